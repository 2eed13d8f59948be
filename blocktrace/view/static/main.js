// The viewer's page: which step each trace is at, the keys and buttons that move it, and the
// evidence banner. Data comes from data.js (server endpoints or the inlined object alike).

import { pageBackend } from "./data.js";
import { clear, el, shortPath, show } from "./dom.js";
import { KEYS, actionForKey } from "./keys.js";
import { Pane } from "./panes.js";
import { Timeline } from "./timeline.js";

const NAV = new Set(["next", "prev", "over", "back-over", "out", "back-out", "next-exception", "prev-exception"]);
const SEARCH_LIMIT = 200;

// A step of one side of a diff, and the step of the other side aligned with it: outside the
// hunks the two traces run in lockstep shifted by what the hunks before added or removed;
// inside a hunk a step pairs with the same offset into the other side's part, or its last step.
export function alignStep(hunks, step, fromA) {
  let shift = 0;
  for (const h of hunks) {
    const [start, count] = hunkSteps(h, fromA ? "a" : "b");
    const [otherStart, otherCount] = hunkSteps(h, fromA ? "b" : "a");
    if (step < start) break;
    if (step < start + count) return otherStart + Math.min(step - start, Math.max(otherCount - 1, 0));
    shift = otherStart + otherCount - (start + count);
  }
  return Math.max(0, step + shift);
}

// A hunk's first step and step count on one side ("a" or "b"), in the viewer's step numbers
// (the server's aSteps/bSteps, [start, end)); the differ's own numbers where it gives no others.
export function hunkSteps(hunk, side) {
  const range = hunk[side + "Steps"];
  if (Array.isArray(range)) return [range[0], range[1] - range[0]];
  return [hunk[side + "Start"], hunk[side + "Count"]];
}

const EVIDENCE = {
  pending: (v) => ["pending", "checking the hash chain in the background… nothing is vouched for yet"],
  sealed: (v, short) => ["sealed", `valid and sealed · head ${short && v.head ? v.head.slice(0, 16) + "…" : v.head || "?"}`],
  unsealed: (v) => ["unsealed", `valid but UNSEALED: intact up to line ${v.line ?? "?"}, the run's end is missing (cut short?) — not proof of a complete run`],
  tampered: (v) => ["tampered", `TAMPERED at line ${v.line ?? "?"}${v.reason ? ": " + v.reason : ""} — the steps shown may be forged`],
  unusable: (v) => ["tampered", `UNUSABLE${v.line ? " at line " + v.line : ""}${v.reason ? ": " + v.reason : ""}`],
};

class App {
  constructor(backend, meta) {
    this.backend = backend;
    this.meta = meta;
    this.traces = meta.traces || [];
    this.diffMode = meta.mode === "diff" && this.traces.length > 1;
    this.diff = null;
    this.active = 0;
    this.step = this.traces.map(() => 0);
    this.selectedLine = null;
    this.selectedFunction = null;
    this.drawn = 0;
    // Work in flight (a navigation and its drawing) and finished bursts of it: the browser
    // tests wait on these instead of sleeping.
    this.pending = 0;
    this.settled = 0;
    this.queue = Promise.resolve();
    this.evidence = this.traces.map(() => null);
    this.message = document.getElementById("message");
    this.panes = this.traces.map((info, t) => new Pane(this, t, info));
    this.timelines = this.traces.map((info, t) => new Timeline(this, t, info));
  }

  async start() {
    document.body.classList.toggle("diff-mode", this.diffMode);
    const names = this.traces.map((info) => shortPath(info.path));
    document.getElementById("title").textContent = this.diffMode ? `diff ${names.join(" ↔ ")}` : `view ${names[0] || ""}`;
    document.title = `blocktrace ${document.getElementById("title").textContent}`;
    clear(document.getElementById("panes"), this.panes.map((pane) => pane.root));
    clear(document.getElementById("timeline"), this.timelines.map((line) => line.root));
    this.wireControls();
    this.drawHelp();
    this.traces.forEach((_, t) => this.watchEvidence(t));
    // A file changed under the server (409 on a read): verify says so; ask it again, once.
    const rechecked = new Set();
    if ("onChanged" in this.backend) this.backend.onChanged = (t) => {
      if (!rechecked.has(t) && t < this.traces.length) { rechecked.add(t); this.watchEvidence(t); }
    };
    const linked = Number.parseInt((location.hash.match(/step=(\d+)/) || [])[1] ?? "", 10);
    // The first step shows at once; the diff (the differ reads both traces whole) and the
    // server's tables come when they come.
    await this.go(0, Number.isNaN(linked) ? 0 : linked);
    const shown = this.step[0];
    if (this.diffMode) {
      this.diff = await this.waitForDiff();
      this.drawDiffBar();
      if (Number.isNaN(linked) && this.step[0] === shown && this.diff && this.diff.firstDivergence) {
        await this.go(0, this.divergenceStep());
      } else {
        await this.render(); // the alignment is known now
      }
    }
    await this.whenReady();
    for (const line of this.timelines) await line.zoomTo(0, line.steps);
    document.body.dataset.readyMs = String(Math.round(performance.now()));
    document.body.dataset.ready = "true";
  }

  // The server answers meta at once, before it has counted the steps (ready: false); the first
  // steps show meanwhile, and the counts, values panel and timeline come once it is ready.
  async whenReady() {
    let delay = 200;
    // (a trace whose tables could not be built says why in meta's error: no more waiting)
    while (this.traces.some((info) => info.ready === false && !info.error)) {
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(1000, delay * 1.5);
      try {
        this.meta = await this.backend.meta();
      } catch (error) {
        this.say(`meta: ${error.message || error}`);
        continue;
      }
      this.traces = this.meta.traces || this.traces;
      const building = this.traces.find((info) => info.ready === false);
      if (building && building.progress) this.say(`reading the trace: ${building.progress.linesRead ?? "?"} lines so far…`);
    }
    this.panes.forEach((pane, t) => pane.updateInfo(this.traces[t]));
    this.timelines.forEach((line, t) => line.setSteps(this.traces[t].steps));
    const failed = this.traces.find((info) => info.error);
    this.say(failed ? `the trace's tables could not be built: ${failed.error}` : "");
    await this.render();
  }

  async waitForDiff() {
    let delay = 200;
    for (;;) {
      let answer;
      try {
        answer = await this.backend.diff();
      } catch (error) {
        this.say(`diff unavailable: ${error.message || error}`);
        return null;
      }
      if (!answer || answer.status !== "pending") {
        if (answer && answer.status === "unusable") {
          this.say(`diff unavailable: ${answer.error || answer.reason || "?"}`);
          return null;
        }
        return answer;
      }
      this.say("aligning the two traces…");
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(1000, delay * 1.5);
    }
  }

  total(t) {
    const steps = this.traces[t].steps;
    return steps === null || steps === undefined ? Infinity : steps;
  }

  hunks() {
    return (this.diff && this.diff.hunks) || [];
  }

  divergenceStep() {
    const first = this.diff.firstDivergence;
    return first.aStep ?? first.step;
  }

  setActive(t) {
    if (!this.diffMode || t === this.active) return;
    this.active = t;
    for (const pane of this.panes) pane.root.classList.toggle("active", pane.t === t);
    this.say(`stepping trace ${t === 0 ? "A" : "B"}`);
  }

  say(text) {
    this.message.textContent = text;
  }

  async busy(work) {
    this.pending++;
    try {
      return await work();
    } finally {
      this.pending--;
      if (this.pending === 0) this.settled++;
    }
  }

  go(t, step) {
    return this.busy(() => this.moveTo(t, step));
  }

  async moveTo(t, step) {
    const target = Math.min(Math.max(0, Math.floor(step)), Math.max(0, this.total(t) - 1));
    this.step[t] = target;
    if (this.diffMode) {
      const other = 1 - t;
      this.step[other] = Math.min(alignStep(this.hunks(), target, t === 0), Math.max(0, this.total(other) - 1));
    }
    for (const pane of this.panes) pane.root.classList.toggle("active", this.diffMode && pane.t === this.active);
    await this.render();
  }

  async render() {
    const drawn = ++this.drawn;
    const data = await Promise.all(this.panes.map((pane) =>
      pane.load(this.step[pane.t]).catch((error) => ({ step: this.step[pane.t], here: null, error }))));
    if (drawn !== this.drawn) return;
    this.panes.forEach((pane, i) => pane.draw(data[i], this.diffMode ? data[1 - i] : null));
    requestAnimationFrame(() => this.panes.forEach((pane) => pane.recenter()));
    const failed = data.find((d) => d.error);
    if (failed) this.say(`could not load step ${failed.step}: ${failed.error.message || failed.error}`);
    const here = this.step[this.active];
    const box = document.getElementById("goto-step");
    if (document.activeElement !== box) box.value = String(here);
    const count = (t) => (this.total(t) === Infinity ? "?" : String(this.total(t)));
    if (this.total(this.active) !== Infinity) box.max = String(Math.max(0, this.total(this.active) - 1));
    document.getElementById("step-count").textContent = this.diffMode
      ? `A ${this.step[0]}/${count(0)} · B ${this.step[1]}/${count(1)}`
      : `of ${count(0)}`;
    this.timelines.forEach((line) => line.place(this.step[line.t]));
    this.markHunk();
    history.replaceState(null, "", `#step=${this.step[0]}`);
    document.body.dataset.step = String(this.step[0]);
  }

  current() {
    const pane = this.panes[this.active];
    return pane.data && pane.data.here ? pane.data.here : null;
  }

  // Actions run one after the other, each from where the one before left the page (a held
  // key must not start ten "next" from the same step).
  act(name) {
    const run = this.queue.then(() => this.perform(name));
    this.queue = run.catch(() => undefined);
    return this.busy(() => run);
  }

  async perform(name) {
    const t = this.active;
    const step = this.step[t];
    const here = this.current();
    if (NAV.has(name)) return this.navigate(t, step, name, {});
    switch (name) {
      case "first": return this.go(t, 0);
      case "last": return this.total(t) === Infinity ? this.say("still counting the steps…") : this.go(t, this.total(t) - 1);
      case "next-hit":
      case "prev-hit": {
        const line = this.selectedLine && this.selectedLine.t === t ? this.selectedLine
          : here && here.file && here.lineno ? { file: here.file, line: here.lineno } : null;
        if (!line) return this.say("select a source line first (click it)");
        return this.navigate(t, step, name, { file: line.file, line: line.line }, `line ${line.line}`);
      }
      case "next-call":
      case "prev-call": {
        const fn = this.selectedFunction || (here && here.function);
        if (!fn) return this.say("select a function first (click a frame or a timeline bar)");
        return this.navigate(t, step, name, { function: fn }, `call of ${fn}`);
      }
      case "divergence": {
        if (!this.diffMode) return this.say("not a diff");
        const first = this.diff && this.diff.firstDivergence;
        if (!first) return this.say("no divergence: the traces agree step by step");
        this.setActive(0);
        return this.go(0, this.divergenceStep());
      }
      case "next-hunk":
      case "prev-hunk": return this.jumpHunk(name === "next-hunk");
      case "switch-side": return this.diffMode ? this.setActive(1 - this.active) : this.say("not a diff");
      case "goto": return focusField("goto-step");
      case "search": return focusField("search-name"); // name first, Tab to the text, Enter
      case "help": return this.toggleHelp();
      case "escape": {
        if (document.activeElement && document.activeElement.blur) document.activeElement.blur();
        return this.toggleHelp(false);
      }
      default: return this.say(`unknown action ${name}`);
    }
  }

  async navigate(t, step, how, extra, what) {
    if (how === "next" || how === "prev") {
      // One op forward or back needs no question to the server (nor its tables).
      const target = step + (how === "next" ? 1 : -1);
      if (target < 0 || target >= this.total(t)) return this.say(`no ${how} step from step ${step}`);
      this.say("");
      return this.go(t, target);
    }
    let answer;
    try {
      answer = await this.backend.nav(t, step, how, extra);
    } catch (error) {
      return this.say(`${how}: ${error.message || error}`);
    }
    if (answer.step === null || answer.step === undefined) {
      return this.say(`no ${how.replace("-", " ")}${what ? " (" + what + ")" : ""} from step ${step}`);
    }
    this.say("");
    return this.go(t, answer.step);
  }

  jumpHunk(forward) {
    const hunks = this.hunks();
    if (!this.diffMode || hunks.length === 0) return this.say(this.diffMode ? "no hunks: the traces agree" : "not a diff");
    const t = this.active;
    const startOf = (h) => hunkSteps(h, t === 0 ? "a" : "b")[0];
    const step = this.step[t];
    const found = forward ? hunks.find((h) => startOf(h) > step) : hunks.filter((h) => startOf(h) < step).pop();
    if (!found) return this.say(`no ${forward ? "next" : "previous"} hunk`);
    this.say(`hunk ${hunks.indexOf(found) + 1} of ${hunks.length}`);
    return this.go(t, startOf(found));
  }

  selectLine(t, file, line) {
    return this.busy(() => this.jumpToLine(t, file, line));
  }

  jumpToLine(t, file, line) {
    this.selectedLine = { t, file, line };
    this.setActive(t);
    this.panes[t].data && this.panes[t].data.here && this.panes[t].markLines(this.panes[t].data.here);
    return this.navigate(t, this.step[t], "next-hit", { file, line }, `line ${line}`).then(async () => {
      if (this.message.textContent.startsWith("no next")) {
        await this.navigate(t, this.step[t], "prev-hit", { file, line }, `line ${line}`);
      }
    });
  }

  selectFunction(name) {
    this.selectedFunction = name;
    this.say(`selected function ${name}: c / Shift+C for its next / previous call`);
    for (const line of this.timelines) line.markFunction(name);
    for (const pane of this.panes) {
      for (const item of pane.frameList.querySelectorAll("li")) {
        const fn = item.querySelector(".fn");
        item.classList.toggle("selected", Boolean(fn) && fn.textContent === name);
      }
    }
  }

  watchEvidence(t) {
    let delay = 300;
    const ask = async () => {
      let answer;
      try {
        answer = await this.backend.verify(t);
      } catch (error) {
        answer = { status: "unusable", reason: `verification failed: ${error.message || error}` };
      }
      this.evidence[t] = answer;
      this.drawEvidence();
      if (answer.status === "pending") {
        setTimeout(ask, delay);
        delay = Math.min(2000, delay * 1.5);
      }
    };
    ask();
  }

  drawEvidence() {
    const banner = document.getElementById("evidence");
    const order = ["tampered", "unsealed", "pending", "unchained", "sealed"];
    let worst = "sealed";
    const parts = this.evidence.map((v, t) => {
      const info = this.traces[t] || {};
      const [kind, text] = v === null ? EVIDENCE.pending({}) : (EVIDENCE[v.status] || (() => ["unchained",
        `not verifiable: ${info.kind === "eip3155" ? "a " + (info.dialect || "client") + " trace carries" : "this file carries"} no hash chain`]))(v, this.diffMode);
      if (order.indexOf(kind) < order.indexOf(worst)) worst = kind;
      const label = this.diffMode ? (t === 0 ? "A: " : "B: ") : "";
      return el("span", { class: `evidence-part ${kind}`, title: v ? [v.reason, v.head && "head " + v.head].filter(Boolean).join("\n") || null : null,
        dataset: { status: v ? v.status : "pending" } }, label + text);
    });
    banner.className = `evidence ${worst}`;
    banner.dataset.status = worst;
    clear(banner, parts);
  }

  drawDiffBar() {
    const bar = el("div", { id: "diffbar", class: "diffbar", "aria-label": "Diff" });
    const d = this.diff;
    if (!d) {
      bar.append(el("span", { class: "muted", text: "no diff" }));
    } else if (!d.firstDivergence) {
      bar.append(el("strong", { text: d.equal ? "same: every step agrees" : "steps agree" }),
        el("span", { class: "muted", text: ` on ${(d.fields || []).join(", ")}` }));
    } else {
      const first = d.firstDivergence;
      bar.append(el("button", { type: "button", class: "divergence", onclick: () => this.act("divergence"),
        text: `first divergence at step ${this.divergenceStep()}` }),
      el("span", { class: "muted", text: first.fields && first.fields.length ? ` in ${first.fields.join(", ")} ` : " (one trace ended) " }));
      this.hunkButtons = this.hunks().map((h, i) => {
        const [a, aCount] = hunkSteps(h, "a");
        const [b, bCount] = hunkSteps(h, "b");
        return el("button", { type: "button", class: "hunk", dataset: { hunk: String(i), step: String(a) },
          title: `A steps ${a}–${a + aCount - 1}, B steps ${b}–${b + bCount - 1}`,
          onclick: () => { this.setActive(0); this.go(0, a); },
          text: `-${a},${aCount} +${b},${bCount}` });
      });
      bar.append(el("span", { class: "hunks" }, `${d.hunkCount ?? this.hunkButtons.length} hunk(s): `, this.hunkButtons));
    }
    if (d && d.summary && !d.summary.equal) {
      bar.append(el("span", { class: "muted", text: ` · summaries differ in ${(d.summary.differences || []).join(", ") || "?"}` }));
    }
    document.getElementById("panes").before(bar);
  }

  markHunk() {
    if (!this.hunkButtons) return;
    const step = this.step[0];
    this.hunks().forEach((h, i) => {
      const [start, count] = hunkSteps(h, "a");
      const inside = step >= start && step < start + Math.max(1, count);
      this.hunkButtons[i].classList.toggle("current", inside);
      if (inside) this.hunkButtons[i].setAttribute("aria-current", "true");
      else this.hunkButtons[i].removeAttribute("aria-current");
    });
  }

  drawHelp() {
    clear(document.getElementById("help-keys"), KEYS.map((k) =>
      el("tr", {}, el("th", { scope: "row" }, el("kbd", { text: k.label })), el("td", { text: k.what }))));
  }

  toggleHelp(open) {
    const help = document.getElementById("help");
    const show = open === undefined ? help.hidden : open;
    help.hidden = !show;
    document.getElementById("help-button").setAttribute("aria-expanded", String(show));
  }

  wireControls() {
    for (const button of document.querySelectorAll("[data-act]")) {
      button.addEventListener("click", () => this.act(button.dataset.act));
      // Glyphs like ◀ are no name for a screen reader: the title (with its key) is.
      if (!button.hasAttribute("aria-label")) button.setAttribute("aria-label", button.title);
    }
    document.getElementById("help-button").addEventListener("click", () => this.toggleHelp());
    document.getElementById("goto").addEventListener("submit", (event) => {
      event.preventDefault();
      const value = Number.parseInt(document.getElementById("goto-step").value, 10);
      if (Number.isNaN(value)) return this.say("type a step number");
      document.getElementById("goto-step").blur();
      return this.go(this.active, value);
    });
    document.getElementById("search").addEventListener("submit", (event) => {
      event.preventDefault();
      this.busy(() => this.search());
    });
    document.addEventListener("keydown", (event) => {
      if (event.ctrlKey || event.metaKey || event.altKey) return;
      const typing = event.target.closest && event.target.closest("input, textarea, select");
      if (typing && event.key !== "Escape") return;
      if (!typing && event.target.closest && event.target.closest("button") && (event.key === "Enter" || event.key === " ")) return;
      const act = actionForKey(event.key);
      if (!act) return;
      event.preventDefault();
      if (event.repeat && this.pending > 2) return; // a held key: drop what the page cannot keep up with
      this.act(act);
    });
  }

  // The steps where a name's value changed to one containing a text; "more" asks on from
  // where the answer stopped (the server reads a bounded part of a huge trace per question).
  async search(from = 0) {
    const name = document.getElementById("search-name").value.trim();
    const text = document.getElementById("search-text").value;
    const list = document.getElementById("search-results");
    const t = this.active;
    if (!name) {
      clear(list, el("li", { class: "muted", text: "type the name of a recorded value first" }));
      focusField("search-name");
      return;
    }
    let answer;
    try {
      answer = await this.backend.search(t, name, text, SEARCH_LIMIT, from || undefined);
    } catch (error) {
      clear(list, el("li", { class: "muted", text: `search failed: ${error.message || error}` }));
      return;
    }
    const matches = answer.matches || [];
    const items = matches.map((m) => el("li", {},
      el("button", { type: "button", class: "link", dataset: { step: String(m.step) }, onclick: () => this.go(t, m.step) },
        `step ${m.step}`), ` ${m.name} = ${show(m.value)}`));
    if (from) {
      const more = list.querySelector(".more");
      if (more) more.remove();
      list.append(...items);
    } else {
      clear(list, items);
    }
    const shown = list.querySelectorAll("li button[data-step]").length;
    if (shown === 0) list.append(el("li", { class: "muted", text: "no step recorded such a value" }));
    const next = answer.next ?? null;
    if (next !== null) {
      list.append(el("li", { class: "more" }, el("button", { type: "button", class: "link",
        onclick: () => this.busy(() => this.search(next)), text: `more, from step ${next}…` })));
    }
    this.say(`${shown}${next !== null ? "+" : ""} match(es)${this.diffMode ? " in " + (t === 0 ? "A" : "B") : ""}`);
  }
}

function focusField(id) {
  const field = document.getElementById(id);
  field.focus();
  if (field.select) field.select();
}

async function main() {
  const backend = pageBackend(document);
  let meta;
  try {
    meta = await backend.meta();
  } catch (error) {
    document.getElementById("evidence").textContent = `cannot load the trace: ${error.message || error}`;
    document.getElementById("evidence").className = "evidence tampered";
    return;
  }
  const app = new App(backend, meta);
  window.blocktraceView = app;
  await app.start();
}

main().catch((error) => {
  const message = document.getElementById("message");
  if (message) message.textContent = `viewer error: ${error.message || error}`;
  document.body.dataset.error = String(error.message || error);
});
