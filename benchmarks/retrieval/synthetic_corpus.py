"""Deterministic, realistic-looking maintenance documentation for the retrieval benchmarks.

Why synthetic: the benchmark must run offline on any machine and give the same corpus for the
same seed. Why this shape: an "industry expert" knowledge base is mostly manuals (Markdown with
sections, paragraphs of very different lengths) and tables (maintenance logs, parts catalogues),
and it is full of identifiers (asset codes, part numbers) that make BM25 posting lists realistic:
a few very common words, a long tail of rare codes.

Everything derives from ``random.Random(seed)``; nothing reads the clock or the environment.
"""

from __future__ import annotations

import csv
import io
import random
from dataclasses import dataclass
from pathlib import Path

EQUIPMENT = [
    "centrifugal pump", "screw compressor", "plate heat exchanger", "control valve", "belt conveyor",
    "steam turbine", "fire-tube boiler", "water chiller", "helical gearbox", "induction motor",
    "cooling tower", "hydraulic press", "refrigerated air dryer", "vacuum pump", "dosing pump",
    "filter press", "distribution transformer", "frequency inverter", "PLC rack", "palletising robot",
    "packaging line", "extruder", "injection moulding machine", "reverse osmosis unit", "bucket elevator",
]
PREFIXES = ["CP", "SC", "HX", "CV", "BC", "ST", "FB", "WC", "GB", "IM", "CT", "HP", "AD", "VP", "DP",
            "FP", "TR", "FI", "PL", "RB", "PK", "EX", "IMM", "RO", "BE"]
PARTS = [
    "mechanical seal", "drive-end bearing", "non-drive-end bearing", "impeller", "casing gasket",
    "filter cartridge", "drive belt", "flexible coupling", "o-ring kit", "pressure transmitter",
    "thermocouple", "solenoid valve", "pneumatic actuator", "shaft sleeve", "wear ring", "oil separator",
    "check valve", "inlet screen", "cooling fan", "contactor", "encoder", "brake pad", "spray nozzle",
    "heating element", "level switch", "safety relief valve", "gland packing", "rotor", "stator winding",
]
SYMPTOMS = [
    "excessive vibration", "a rising bearing temperature", "cavitation noise", "low discharge pressure",
    "oil leakage at the shaft", "frequent overcurrent trips", "an intermittent fault code", "slow cycle times",
    "fouling of the plates", "condensate in the air line", "belt slip under load", "a hunting control loop",
    "high motor current", "unexpected shutdowns", "scale build-up", "a drop in flow rate",
]
SITES = ["Rotterdam", "Leipzig", "Gdansk", "Lyon", "Bilbao", "Turin", "Ostrava", "Tampere", "Porto", "Graz",
         "Aarhus", "Brno", "Ghent", "Cork", "Malmo", "Zaragoza"]
TEAMS = ["mechanical", "electrical", "instrumentation", "utilities", "reliability", "process"]
LUBRICANTS = ["lithium complex", "polyurea", "calcium sulfonate", "synthetic PAO", "food-grade H1"]
SENSORS = ["pressure transmitter", "flow meter", "temperature probe", "level radar", "vibration sensor", "load cell"]
MEASURES = [("discharge pressure", "bar"), ("flow rate", "m3/h"), ("winding temperature", "degC"),
            ("vibration velocity", "mm/s"), ("motor current", "A"), ("oil temperature", "degC")]
DOC_TYPES = ["Maintenance manual", "Troubleshooting guide", "Inspection procedure", "Commissioning report",
             "Safety instruction", "Operating instructions"]
SECTIONS = ["Overview", "Safety", "Daily checks", "Inspection schedule", "Lubrication", "Troubleshooting",
            "Spare parts", "Calibration", "Start-up procedure", "Shutdown procedure", "Alignment", "Records"]
FILLER = [
    "Operators should follow the site procedure and the manufacturer's instructions at all times.",
    "Any deviation from the values in this document must be reported to the shift supervisor.",
    "Keep the area around the equipment clean and free of loose material.",
    "Use only approved tools and personal protective equipment for this task.",
    "The reliability team reviews the trend data every week and adjusts the intervals when needed.",
    "Spare parts are issued from the central store against a work order number.",
]

SENTENCES = [
    "Inspect the {part} of the {eq} {code} every {hours} operating hours and record the result in the maintenance log.",
    "If the {eq} shows {symptom}, stop the unit, isolate it electrically and check the {part} before restarting.",
    "The nominal {measure} of {code} is {value} {unit}; readings above {limit} {unit} indicate {symptom}.",
    "At the {site} plant, {code} is looked after by the {team} team on the {shift} shift.",
    "Replace the {part} with spare part {partno} when wear exceeds {pct} percent of the original thickness.",
    "Torque the {part} bolts to {torque} Nm in a cross pattern, then re-check them after {recheck} hours of operation.",
    "Lubricate the {part} with {lubricant} grease; over-greasing raises the bearing temperature.",
    "Calibration of the {sensor} on {code} is due every {months} months and must be traceable to a reference standard.",
    "A common cause of {symptom} in a {eq} is a worn {part} or misalignment of the coupling.",
    "Lock out and tag out the {eq} {code} before opening any guard, and verify zero energy at the isolator.",
    "Document every deviation in work order {wo} and attach photos of the {part}.",
    "Vibration above {vib} mm/s on the {eq} bearing housing requires an inspection within {days} days.",
    "After replacing the {part}, run {code} unloaded for {minutes} minutes and listen for {symptom}.",
    "The {site} site keeps {stock} units of {partno} in stock for the {eq} fleet.",
    "Since the upgrade in {year}, {code} uses a {part} from a second supplier with a longer service life.",
    "Check the {sensor} reading against a calibrated reference before blaming the {part} for {symptom}.",
]


@dataclass(frozen=True)
class Asset:
    equipment: str
    code: str
    site: str


def asset_catalogue(seed: int, count: int = 3000) -> list[Asset]:
    """A fleet of assets with unique codes (the rare terms BM25 queries hit)."""
    rng = random.Random(seed)
    assets: dict[str, Asset] = {}
    while len(assets) < count:
        kind = rng.randrange(len(EQUIPMENT))
        code = f"{PREFIXES[kind]}-{rng.randint(100, 9999)}"
        assets.setdefault(code, Asset(EQUIPMENT[kind], code, rng.choice(SITES)))
    return list(assets.values())


class ProseWriter:
    """Sentences and paragraphs of technical prose about a given asset."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def sentence(self, asset: Asset) -> str:
        rng = self.rng
        if rng.random() < 0.08:
            return rng.choice(FILLER)
        measure, unit = rng.choice(MEASURES)
        value = rng.randint(2, 90)
        return rng.choice(SENTENCES).format(
            part=rng.choice(PARTS), eq=asset.equipment, code=asset.code, hours=rng.choice([250, 500, 1000, 2000, 4000, 8000]),
            symptom=rng.choice(SYMPTOMS), measure=measure, value=value, unit=unit, limit=int(value * 1.25) + 1,
            site=asset.site, team=rng.choice(TEAMS), shift=rng.choice(["early", "late", "night"]),
            partno=f"SP-{rng.randint(10000, 99999)}", pct=rng.choice([10, 15, 20, 25, 30]), torque=rng.randint(20, 450),
            recheck=rng.choice([24, 48, 72, 100]), lubricant=rng.choice(LUBRICANTS), sensor=rng.choice(SENSORS),
            months=rng.choice([3, 6, 12, 24]), wo=f"WO-{rng.randint(100000, 999999)}", vib=round(rng.uniform(2.8, 11.2), 1),
            days=rng.choice([1, 3, 7, 14]), minutes=rng.choice([5, 10, 15, 30]), stock=rng.randint(1, 40),
            year=rng.randint(2012, 2025),
        )

    def paragraph(self, asset: Asset, sentences: int) -> str:
        return " ".join(self.sentence(asset) for _ in range(sentences))


def markdown_document(rng: random.Random, asset: Asset) -> str:
    """A manual: title, 1-12 sections, paragraphs of 1-9 sentences, sometimes a bullet list.

    Lengths are log-uniform-ish (many short notes, a few long manuals), as in real document sets.
    """
    prose = ProseWriter(rng)
    lines = [f"# {rng.choice(DOC_TYPES)}: {asset.equipment} {asset.code} ({asset.site})", ""]
    sections = max(1, int(2 ** rng.uniform(0, 3.6)))
    for name in rng.sample(SECTIONS, min(sections, len(SECTIONS))):
        lines += [f"## {name}", ""]
        for _ in range(max(1, int(2 ** rng.uniform(0, 2.5)))):
            lines += [prose.paragraph(asset, rng.randint(1, 9)), ""]
        if rng.random() < 0.3:
            lines += [f"- {prose.sentence(asset)}" for _ in range(rng.randint(2, 6))] + [""]
    return "\n".join(lines)


def csv_document(rng: random.Random, assets: list[Asset]) -> str:
    """A maintenance log or a parts catalogue: 20-200 rows, one short note per row."""
    prose = ProseWriter(rng)
    out = io.StringIO()
    writer = csv.writer(out)
    rows = int(20 * 2 ** rng.uniform(0, 3.3))
    if rng.random() < 0.6:
        writer.writerow(["date", "asset", "equipment", "site", "action", "part", "hours", "technician", "notes"])
        for _ in range(rows):
            asset = rng.choice(assets)
            writer.writerow([
                f"{rng.randint(2019, 2025)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}", asset.code, asset.equipment,
                asset.site, rng.choice(["inspected", "replaced", "lubricated", "calibrated", "repaired", "cleaned"]),
                rng.choice(PARTS), rng.randint(1, 60000), f"T{rng.randint(100, 999)}", prose.sentence(asset),
            ])
    else:
        writer.writerow(["part_no", "description", "fits", "price_eur", "stock", "supplier"])
        for _ in range(rows):
            asset = rng.choice(assets)
            writer.writerow([
                f"SP-{rng.randint(10000, 99999)}", f"{rng.choice(PARTS)} for {asset.equipment}", asset.code,
                f"{rng.uniform(3, 4000):.2f}", rng.randint(0, 120), f"Supplier {rng.choice('ABCDEFGHJK')}",
            ])
    return out.getvalue()


def write_corpus(folder: Path, files: int, seed: int, csv_share: float = 0.2) -> list[Path]:
    """Write ``files`` documents (Markdown and CSV) under ``folder``; same seed, same bytes."""
    rng = random.Random(seed)
    assets = asset_catalogue(seed)
    written = []
    for index in range(files):
        sub = folder / f"site_{index % 8}"
        sub.mkdir(parents=True, exist_ok=True)
        if rng.random() < csv_share:
            path = sub / f"table_{index:04d}.csv"
            path.write_text(csv_document(rng, assets), encoding="utf-8")
        else:
            path = sub / f"manual_{index:04d}.md"
            path.write_text(markdown_document(rng, rng.choice(assets)), encoding="utf-8")
        written.append(path)
    return written


def chunk_texts(count: int, seed: int) -> list[tuple[Asset, str]]:
    """``count`` distinct chunk-sized paragraphs (about 80-200 words, i.e. up to ~200 tokens)."""
    rng = random.Random(seed + 1)
    assets = asset_catalogue(seed)
    prose = ProseWriter(rng)
    out = []
    for _ in range(count):
        asset = rng.choice(assets)
        out.append((asset, prose.paragraph(asset, rng.randint(4, 8))))
    return out


QUESTIONS = [
    "How often should the {part} of {code} be inspected?",
    "What causes {symptom} in a {eq}?",
    "torque for the {part} bolts on the {eq}",
    "Which spare part replaces the {part} on {code}?",
    "calibration interval of the {sensor} on {code}",
    "{code} {symptom} after replacing the {part}",
    "Who maintains {code} at the {site} plant?",
    "lubricant for the {part} of a {eq}",
]


def queries(count: int, seed: int) -> list[str]:
    """Questions mixing asset codes (lexical) and paraphrasable symptoms (semantic)."""
    rng = random.Random(seed + 2)
    assets = asset_catalogue(seed)
    out = []
    for _ in range(count):
        asset = rng.choice(assets)
        out.append(rng.choice(QUESTIONS).format(
            part=rng.choice(PARTS), code=asset.code, symptom=rng.choice(SYMPTOMS), eq=asset.equipment,
            sensor=rng.choice(SENSORS), site=asset.site,
        ))
    return out
