"""Write ``parts-catalogue.jsonl``: the CPU demo's training data (fictional, deterministic).

A small industrial parts catalogue of the fictional Halvorsen Hydraulics, turned into chat
and instruction examples of realistic, mixed lengths: one-line facts, troubleshooting
paragraphs, numbered replacement procedures and two-turn conversations. The facts (part
numbers, torques, intervals) are invented, so a base model cannot know them and a trained
adapter visibly changes the answers.

    python train/examples/make_parts_catalogue.py    # rewrites the .jsonl next to this file
"""

from __future__ import annotations

import json
import random
from pathlib import Path

SYSTEM = "You are the service assistant of Halvorsen Hydraulics. Answer precisely, with part numbers and values."

# number, name, function, torque (Nm), service interval (h), fits, symptom, cause, check
PARTS = [
    ("HX-220", "plate heat exchanger", "cools the hydraulic oil of the HPU-40 power unit before it returns to the tank", 45, 2000, "HPU-40 and HPU-60", "oil temperature above 65 °C", "fouled plates", "the cooling-water flow and the plate pack for scale"),
    ("PV-310", "proportional valve", "meters flow to the lift cylinder in proportion to the 4-20 mA control signal", 12, 4000, "LX-series lifts", "jerky lift movement", "a worn spool or a dirty pilot stage", "the 4-20 mA signal and the pilot filter"),
    ("AC-115", "bladder accumulator", "stores pressurised oil to absorb pressure peaks and to supply short bursts of flow", 80, 1000, "HPU-40, HPU-60 and PX-900 presses", "pressure drops during fast cycles", "a low nitrogen pre-charge", "the nitrogen pre-charge, which must be 90 bar"),
    ("FL-042", "return-line filter", "removes particles down to 10 micron from the oil returning to the tank", 25, 500, "all HPU units", "the clogging indicator turns red", "a saturated filter element", "the indicator and the element FL-042E"),
    ("PM-700", "axial piston pump", "delivers up to 70 litres per minute at 280 bar for the main circuit", 120, 8000, "HPU-60 and PX-900 presses", "whining noise and falling pressure", "cavitation from a blocked suction strainer", "the suction strainer and the oil level"),
    ("CY-508", "double-acting cylinder", "drives the ram of the PX-900 press with 50 tonnes of force", 210, 6000, "PX-900 presses", "the ram drifts down under load", "worn piston seals", "the piston seal kit CY-508S"),
    ("SN-090", "pressure transmitter", "measures system pressure from 0 to 400 bar and sends it to the controller", 35, 12000, "all HPU units", "the pressure reading jumps", "a loose M12 connector", "the M12 connector and the cable shield"),
    ("RV-150", "pressure relief valve", "limits the system pressure to the set value, 250 bar from the factory", 60, 4000, "HPU-40 and HPU-60", "the system never reaches working pressure", "a relief valve set too low or stuck open", "the set pressure with a test gauge"),
    ("MT-450", "electric motor", "drives the pump at 1480 rpm with 45 kW", 95, 10000, "HPU-60", "the motor trips on overload", "a seized pump coupling or low supply voltage", "the supply voltage and the coupling CP-450"),
    ("CP-450", "jaw coupling", "connects the motor shaft to the pump shaft and damps vibration", 40, 5000, "HPU-60", "knocking at start-up", "a worn elastomer spider", "the spider CP-450E for cracks"),
    ("TK-120", "oil tank", "holds 120 litres of ISO VG 46 hydraulic oil and lets air separate", 30, 2000, "HPU-40", "foam on the oil", "air sucked in at the pump inlet", "the suction-line clamps and the oil level"),
    ("BR-330", "breather filter", "lets the tank breathe while keeping dust and moisture out", 10, 1000, "all tanks", "water in the oil", "a saturated desiccant breather", "the desiccant colour, which turns pink when spent"),
    ("HS-612", "high-pressure hose", "connects the pump to the valve block, rated 350 bar", 70, 3000, "HPU-40 and HPU-60", "oil mist near the valve block", "a chafed hose or a loose fitting", "the hose cover and the fitting torque"),
    ("VB-900", "valve block", "carries the directional and relief valves of the PX-900 circuit", 55, 8000, "PX-900 presses", "the press moves the wrong way", "swapped solenoid plugs on the valve block", "the solenoid plugs against the wiring diagram"),
    ("SV-224", "solenoid directional valve", "switches the cylinder between extend, hold and retract", 9, 5000, "PX-900 and LX-series", "the valve does not switch", "a burnt 24 V coil", "the coil resistance, which must be 19 ohm"),
    ("CL-300", "oil cooler fan", "blows air through the air-oil cooler of mobile units", 20, 3000, "HPU-M mobile units", "overheating on hot days", "a blocked cooler core", "the cooler core and the fan fuse"),
    ("LS-015", "level switch", "stops the pump when the tank level falls below the minimum mark", 15, 6000, "all tanks", "the pump will not start", "a level switch stuck at low", "the float for sludge"),
    ("TS-066", "temperature switch", "warns at 65 °C and stops the unit at 75 °C oil temperature", 15, 6000, "all HPU units", "nuisance over-temperature stops", "a switch drifted from its set points", "the switch against a calibrated thermometer"),
    ("GA-100", "pressure gauge", "shows system pressure locally on a glycerine-filled 100 mm dial", 20, 12000, "all HPU units", "the needle vibrates", "a missing snubber", "the snubber GA-100D"),
    ("SK-508", "seal kit", "contains every seal needed to rebuild a CY-508 cylinder", 0, 6000, "CY-508 cylinders", "oil on the cylinder rod", "a worn rod seal", "the rod for scores before fitting new seals"),
]

PROCEDURE_STEPS = [
    "Switch the unit off, lock out the main isolator and hang a warning tag.",
    "Relieve the stored pressure: open the accumulator bleed valve and wait until gauge GA-100 reads 0 bar.",
    "Place a drip tray under the work area and have absorbent cloths ready.",
    "Disconnect the connections to {number} and cap every open port at once.",
    "Remove the mounting bolts and lift {number} out, supporting its weight.",
    "Clean the mounting faces and fit new O-rings from the service kit.",
    "Fit the new {number} and tighten the mounting bolts to {torque} Nm in a cross pattern.",
    "Reconnect the lines, refill the tank to the upper mark with ISO VG 46 oil if needed.",
    "Start the unit at low pressure and bleed air from the circuit.",
    "Check for leaks at working pressure and log the replacement in the service book.",
]


def facts(p: tuple) -> list[dict]:
    number, name, function, torque, interval, fits, symptom, cause, check = p
    torque_line = (
        f"Tighten the {number} mounting bolts to {torque} Nm in a cross pattern, with the unit depressurised."
        if torque
        else f"The {number} has no bolted joint; fit the seals by hand without tools with sharp edges."
    )
    steps = [s.format(number=number, torque=torque) for s in PROCEDURE_STEPS]
    procedure = "\n".join(f"{i}. {s}" for i, s in enumerate(steps, start=1))
    record = f"Part: {number}\nName: {name}\nFits: {fits}\nFunction: {function}\nTorque: {torque} Nm\nService interval: {interval} h"
    return [
        {"messages": [{"role": "user", "content": f"What does part {number} do?"},
                      {"role": "assistant", "content": f"{number} is the {name}: it {function}."}]},
        {"messages": [{"role": "system", "content": SYSTEM},
                      {"role": "user", "content": f"What torque do the {number} bolts need?"},
                      {"role": "assistant", "content": torque_line}]},
        {"instruction": f"How often must the {name} {number} be serviced?",
         "output": f"Service {number} every {interval} operating hours, or sooner if {symptom}."},
        {"messages": [{"role": "system", "content": SYSTEM},
                      {"role": "user", "content": f"We see {symptom} on a unit with {number}. What should I check?"},
                      {"role": "assistant", "content": (
                          f"{symptom.capitalize()} on {number} usually comes from {cause}. Check {check} first. "
                          f"If that is in order, compare the readings with the commissioning record of the unit, "
                          f"and replace {number} if the fault stays. Remember that {number} fits {fits}, so a "
                          f"spare from another unit of the same type can be used to confirm the diagnosis.")}]},
        {"messages": [{"role": "user", "content": f"Give me the replacement procedure for {number}."},
                      {"role": "assistant", "content": f"Replacing the {name} {number}:\n{procedure}"}]},
        {"messages": [{"role": "user", "content": f"Which machines use {number}?"},
                      {"role": "assistant", "content": f"{number} ({name}) fits {fits}."},
                      {"role": "user", "content": "And what is its service interval?"},
                      {"role": "assistant", "content": f"Every {interval} operating hours."}]},
        {"instruction": "Summarise this catalogue record for a technician in two sentences.", "input": record,
         "output": f"{number} is the {name} for {fits}; it {function}. Torque its bolts to {torque} Nm and service it every {interval} h."},
    ]


def main() -> None:
    examples = [e for p in PARTS for e in facts(p)]
    random.Random(7).shuffle(examples)
    out = Path(__file__).with_name("parts-catalogue.jsonl")
    out.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in examples))
    print(f"wrote {len(examples)} examples to {out}")


if __name__ == "__main__":
    main()
