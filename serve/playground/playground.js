// The playground: one page over the public API (no build step, no third-party code).
// Answers stream from POST v1/chat/completions (OpenAI's SSE chunks); the route is the `model`
// name (base, base+rag, <adapter>, <adapter>+rag); `sources` arrive on the chunk that carries
// `finish_reason`, and every [n] of the answer links to sources[n-1]. Errors show the API's own
// message ({"error": {"message", "type", "code"}}). The API key lives in this page's memory only.
"use strict";

const RAG = "+rag";
const INT_FIELDS = new Set(["page", "row", "chunk_index"]);
const TEXT_FIELDS = new Set(["doc_id", "source", "title", "section", "file_type"]);
const state = { apiKey: "", adapters: [], busy: false };
const $ = (selector, root = document) => root.querySelector(selector);

class ApiFailure extends Error {}

function requestHeaders() {
  const headers = { "content-type": "application/json" };
  if (state.apiKey) headers.authorization = `Bearer ${state.apiKey}`;
  return headers;
}

function escapeHtml(text) {
  return text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

// The API's own error message, prefixed by the status (e.g. "401: missing or invalid API key ...").
async function failureOf(response) {
  const text = await response.text();
  try {
    const body = JSON.parse(text);
    if (body && body.error && body.error.message) return new ApiFailure(`${response.status}: ${body.error.message}`);
  } catch (_) { /* not JSON: fall through */ }
  return new ApiFailure(`${response.status} ${response.statusText}: ${text.slice(0, 300)}`);
}

function showError(message) {
  const box = $("#error");
  box.textContent = message;
  box.hidden = !message;
}

// -- models and routes --------------------------------------------------------------------
async function loadModels() {
  const response = await fetch("v1/models", { headers: requestHeaders() });
  if (!response.ok) {
    const failure = await failureOf(response);
    if (response.status === 401) $("#api-key").focus();
    throw failure;
  }
  const ids = (await response.json()).data.map((m) => m.id);
  state.adapters = ids.filter((id) => id !== "base" && !id.endsWith(RAG));
  const route = $("#route");
  const previous = route.value;
  route.replaceChildren(
    new Option("base: the model alone", "base"),
    new Option("RAG: base model over retrieved passages", "base" + RAG),
    ...state.adapters.flatMap((a) => [
      new Option(`fine-tuned: ${a}`, a),
      new Option(`hybrid: ${a} over retrieved passages`, a + RAG),
    ]),
  );
  route.value = ids.includes(previous) ? previous : "base" + RAG;
  const compare = $("#compare-adapter");
  compare.replaceChildren(...state.adapters.map((a) => new Option(a, a)));
  if (!state.adapters.length) compare.replaceChildren(new Option("(no adapter registered)", ""));
  $("#server").textContent = `${state.adapters.length} adapter(s) registered`;
  showError("");
}

// -- filters ------------------------------------------------------------------------------
function addFilterRow() {
  const row = $("#filter-row").content.firstElementChild.cloneNode(true);
  $(".remove-filter", row).addEventListener("click", () => row.remove());
  $("#filter-rows").append(row);
  $(".filter-field", row).focus();
}

// One typed value as serve/schemas.py's filters take it: whole numbers for page/row/chunk_index,
// text for the text fields, and for meta.<column> a number or true/false unless quoted.
function filterValue(field, raw) {
  const text = raw.trim();
  if (INT_FIELDS.has(field)) {
    if (!/^-?\d+$/.test(text)) throw new ApiFailure(`filter ${field}: '${raw}' is not a whole number`);
    return Number.parseInt(text, 10);
  }
  if (TEXT_FIELDS.has(field)) return text;
  const quoted = text.match(/^"(.*)"$|^'(.*)'$/);
  if (quoted) return quoted[1] ?? quoted[2];
  if (/^-?\d+(\.\d+)?([eE][-+]?\d+)?$/.test(text)) return Number(text);
  if (text === "true" || text === "false") return text === "true";
  return text;
}

function readFilters() {
  return [...document.querySelectorAll("#filter-rows .filter-row")].flatMap((row) => {
    const field = $(".filter-field", row).value.trim();
    const op = $(".filter-op", row).value;
    const raw = $(".filter-value", row).value;
    if (!field && !raw.trim()) return [];
    if (!field) throw new ApiFailure("a filter needs a field (source, section, page, meta.<column> ...)");
    const value = op.endsWith("in")
      ? raw.split(",").map((v) => v.trim()).filter(Boolean).map((v) => filterValue(field, v))
      : filterValue(field, raw);
    return [{ field, op, value }];
  });
}

function readSettings() {
  const topK = $("#top-k").value.trim();
  return {
    question: $("#question").value,
    maxTokens: Number.parseInt($("#max-tokens").value, 10) || undefined,
    temperature: Number($("#temperature").value || 0),
    topK: topK ? Number.parseInt(topK, 10) : undefined,
    filters: readFilters(),
  };
}

// -- one streamed answer ------------------------------------------------------------------
// Streams `model`'s answer into `view` (an element holding .answer, .stats, .sources).
async function streamAnswer(model, settings, view) {
  const answer = $(".answer", view);
  const stats = $(".stats", view);
  view.dataset.state = "streaming";
  answer.classList.remove("failed");
  answer.textContent = "";
  answer.classList.add("streaming");
  stats.textContent = "waiting...";
  renderSources(view, null);
  const body = {
    model,
    messages: [{ role: "user", content: settings.question }],
    stream: true,
    stream_options: { include_usage: true },
    temperature: settings.temperature,
  };
  if (settings.maxTokens) body.max_tokens = settings.maxTokens;
  if (model.endsWith(RAG)) {
    if (settings.topK) body.rag_top_k = settings.topK;
    if (settings.filters.length) body.rag_filters = settings.filters;
  }
  const started = performance.now();
  let firstToken = null;
  let text = "";
  let sources = null;
  let usage = null;
  let finish = null;
  try {
    const response = await fetch("v1/chat/completions", { method: "POST", headers: requestHeaders(), body: JSON.stringify(body) });
    if (!response.ok) throw await failureOf(response);
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const event = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        for (const line of event.split("\n")) {
          if (!line.startsWith("data: ")) continue;
          const data = line.slice(6);
          if (data === "[DONE]") continue;
          const chunk = JSON.parse(data);
          if (chunk.error) throw new ApiFailure(`${chunk.error.code}: ${chunk.error.message}`);  // in-band (timeouts)
          if (chunk.usage) usage = chunk.usage;
          if (chunk.sources) sources = chunk.sources;
          const choice = chunk.choices && chunk.choices[0];
          if (!choice) continue;
          if (choice.finish_reason) finish = choice.finish_reason;
          const piece = choice.delta && choice.delta.content;
          if (piece) {
            if (firstToken === null) firstToken = performance.now();
            text += piece;
            answer.textContent = text;
          }
        }
      }
    }
  } catch (error) {
    answer.classList.remove("streaming");
    answer.classList.add("failed");
    answer.textContent = error instanceof ApiFailure ? error.message : `request failed: ${error.message}`;
    stats.textContent = "";
    view.dataset.state = "failed";
    return { ok: false, error: answer.textContent };
  }
  const seconds = (performance.now() - started) / 1000;
  answer.classList.remove("streaming");
  renderAnswer(answer, text, sources || []);
  renderSources(view, sources);
  const parts = [`${seconds.toFixed(2)} s`];
  if (firstToken !== null) parts.push(`first token ${((firstToken - started) / 1000).toFixed(2)} s`);
  if (usage) parts.push(`${usage.prompt_tokens} prompt + ${usage.completion_tokens} completion tokens`);
  if (finish === "length") parts.push("cut at max tokens");
  stats.textContent = parts.join(" · ");
  view.dataset.state = "done";
  return { ok: true, text, seconds, usage, sources };
}

// The answer with each [n] that names a retrieved passage turned into a link to it.
function renderAnswer(element, text, sources) {
  element.innerHTML = escapeHtml(text).replace(/\[(\d+)\]/g, (match, n) => {
    const ref = Number(n);
    return ref >= 1 && ref <= sources.length ? `<a href="#" class="cite" data-ref="${ref}">[${ref}]</a>` : match;
  });
}

function where(source) {
  const meta = source.metadata || {};
  const parts = [];
  if (source.section) parts.push(source.section);
  if (meta.page !== undefined && meta.page !== null && meta.page >= 0) parts.push(`page ${meta.page}`);
  if (meta.row !== undefined && meta.row !== null && meta.row >= 0) parts.push(`row ${meta.row}`);
  return parts;
}

function renderSources(view, sources) {
  const box = $(".sources", view);
  box.replaceChildren();
  if (!sources) return;
  if (!sources.length) {
    box.innerHTML = '<p class="muted">No passage was retrieved (check the filters).</p>';
    return;
  }
  for (const source of sources) {
    const item = document.createElement("details");
    item.className = "source";
    item.dataset.ref = source.ref;
    const summary = document.createElement("summary");
    summary.innerHTML =
      `<a href="#" class="cite" data-ref="${source.ref}">[${source.ref}]</a> ` +
      `<span class="doc">${escapeHtml(source.source)}</span>` +
      where(source).map((p) => ` <span class="where">· ${escapeHtml(String(p))}</span>`).join("") +
      ` <span class="score muted">score ${Number(source.score).toFixed(3)}</span>`;
    const passage = document.createElement("blockquote");
    passage.className = "passage";
    passage.textContent = source.text;
    item.append(summary, passage);
    box.append(item);
  }
}

// A click on any [n] (in the answer or the list) opens passage n of the same result.
function openCitation(event) {
  const link = event.target.closest("a.cite");
  if (!link) return;
  event.preventDefault();
  const container = link.closest(".column") || $("#single");
  const passage = $(`.source[data-ref="${link.dataset.ref}"]`, container);
  if (!passage) return;
  document.querySelectorAll(".source.highlight").forEach((s) => s.classList.remove("highlight"));
  passage.open = true;
  passage.classList.add("highlight");
  passage.scrollIntoView({ block: "nearest" });
}

// -- actions ------------------------------------------------------------------------------
function setBusy(busy) {
  state.busy = busy;
  $("#ask").disabled = busy;
  $("#compare").disabled = busy;
}

// What ask and compare both do first: read the controls (a bad value is shown, nothing is sent),
// clear the last error and show the view the answers go to.
function begin({ compareView }) {
  let settings;
  try {
    settings = readSettings();
  } catch (error) {
    showError(error.message);
    return null;
  }
  showError("");
  $("#single").hidden = compareView;
  $("#compare-view").hidden = !compareView;
  return settings;
}

async function ask(event) {
  event.preventDefault();
  if (state.busy) return;
  const settings = begin({ compareView: false });
  if (!settings) return;
  const model = $("#route").value || "base" + RAG;
  $("#answer-route").textContent = $("#route").selectedOptions[0]?.textContent || model;
  const view = $("#single");
  setBusy(true);
  try {
    const result = await streamAnswer(model, settings, view);
    if (!result.ok) showError(result.error);
  } finally {
    setBusy(false);
  }
}

async function compare() {
  if (state.busy || !$("#ask-form").reportValidity()) return;
  const settings = begin({ compareView: true });
  if (!settings) return;
  const adapter = $("#compare-adapter").value;
  const models = { base: "base", rag: "base" + RAG, finetuned: adapter, hybrid: adapter && adapter + RAG };
  const view = $("#compare-view");
  view.dataset.state = "streaming";
  setBusy(true);
  try {
    // All four at once: the server batches them into the same decoding steps.
    const results = await Promise.all(
      [...view.querySelectorAll(".column")].map((column) => {
        const model = models[column.dataset.kind];
        $(".model", column).textContent = model ? `model: ${model}` : "";
        if (!model) {
          $(".answer", column).textContent = "no adapter is registered: train one (python -m train) to compare";
          $(".stats", column).textContent = "";
          column.dataset.state = "done";
          return { ok: true };
        }
        return streamAnswer(model, settings, column);
      }),
    );
    const failed = results.find((r) => !r.ok);
    if (failed) showError(failed.error);
  } finally {
    view.dataset.state = "done";
    setBusy(false);
  }
}

function start() {
  $("#ask-form").addEventListener("submit", ask);
  $("#compare").addEventListener("click", compare);
  $("#add-filter").addEventListener("click", addFilterRow);
  document.addEventListener("click", openCitation);
  $("#api-key").addEventListener("change", (event) => {
    state.apiKey = event.target.value.trim();  // memory only: never stored, never put in a URL
    loadModels().catch((error) => showError(error.message));
  });
  loadModels().catch((error) => showError(error.message));
}

start();
