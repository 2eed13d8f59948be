// One trace's panels: source (or, for client traces, the ops around the step), the op, the
// call stack, the values, and for EIP-3155 client traces stack, memory, returnData, refund and
// the summary. A Pane loads what one step needs and draws it; the app decides which step.

import { clear, el, sameValue, shortPath, show } from "./dom.js";

const WINDOW = 256;
const OPS_AROUND = 12;

// Where a field the differ compares lives in a window step.
export function fieldOf(step, field) {
  if (!step) return undefined;
  if (field === "line") return step.lineno;
  if (field === "locals" || field === "globals") return step.values ? step.values[field] : undefined;
  return step[field];
}

export class StepCache {
  constructor(backend, t) {
    this.backend = backend;
    this.t = t;
    this.windows = new Map();
  }

  load(start) {
    let found = this.windows.get(start);
    if (!found) {
      found = this.backend.window(this.t, start, WINDOW).then((answer) => answer.steps || []);
      found.catch(() => this.windows.delete(start));
      this.windows.set(start, found);
      if (this.windows.size > 64) this.windows.delete(this.windows.keys().next().value);
    }
    return found;
  }

  async get(step) {
    const start = step - (step % WINDOW);
    const steps = await this.load(start);
    return steps.find((s) => s.step === step) || null;
  }

  async range(from, to) {
    const out = [];
    for (let start = from - (from % WINDOW); start <= to; start += WINDOW) {
      for (const s of await this.load(start)) if (s.step >= from && s.step <= to) out.push(s);
    }
    return out;
  }
}

export class Pane {
  constructor(app, t, info) {
    this.app = app;
    this.t = t;
    this.info = info;
    this.client = info.kind === "eip3155";
    this.cache = new StepCache(app.backend, t);
    this.sources = new Map();
    this.shownFile = undefined;
    this.lineItems = new Map();
    this.build();
  }

  build() {
    const side = this.app.diffMode ? (this.t === 0 ? "A" : "B") : "";
    const title = el("h2", { class: "pane-title" },
      side ? el("span", { class: "side-label", text: side }) : null,
      el("span", { class: "path", title: this.info.path, text: shortPath(this.info.path) }),
      this.countLabel = el("span", { class: "muted" }));
    this.stepNote = el("p", { class: "note muted step-note", hidden: true });
    this.updateInfo(this.info);
    this.sourceTitle = el("h3", { class: "box-title", text: this.client ? "Ops" : "Source" });
    this.sourceList = el("ol", { class: "source", tabindex: "0", "aria-label": this.client ? "Ops around this step" : "Source" });
    this.sourceNote = el("p", { class: "note muted" });
    this.opList = el("dl", { class: "op" });
    this.frameList = el("ol", { class: "frames" });
    this.valueBody = el("tbody");
    this.evmBox = el("div", { class: "evm" });
    const boxes = [
      el("div", { class: "box op-box" }, el("h3", { class: "box-title", text: "Op" }), this.opList),
      el("div", { class: "box frames-box" }, el("h3", { class: "box-title", text: "Call stack" }), this.frameList),
    ];
    this.valueBox = el("div", { class: "box values-box", hidden: !this.info.hasValues },
      el("h3", { class: "box-title", text: "Values at this step" }),
      el("table", { class: "values" },
        el("thead", {}, el("tr", {}, el("th", { text: "name" }), el("th", { text: "value" }), el("th", { text: "changed at" }))),
        this.valueBody));
    boxes.push(this.valueBox);
    if (this.client) boxes.push(el("div", { class: "box evm-box" }, this.evmBox));
    this.summaryList = el("dl", { class: "summary" });
    boxes.push(el("div", { class: "box summary-box" }, el("h3", { class: "box-title", text: "Summary" }), this.summaryList));
    this.drawSummary(this.info);
    this.root = el("section", { class: `pane ${this.client ? "client" : "ours"}`, dataset: { t: String(this.t) },
      "aria-label": side ? `Trace ${side}` : "Trace" },
    title,
    this.stepNote,
    el("div", { class: "pane-body" },
      el("div", { class: "box source-box" }, this.sourceTitle, this.sourceNote, this.sourceList),
      el("div", { class: "side" }, boxes)));
    this.root.addEventListener("mousedown", () => this.app.setActive(this.t));
  }

  // The server answers meta before its tables are built (steps unknown); the app passes the
  // complete meta here once it has it.
  updateInfo(info) {
    this.info = info;
    const steps = info.steps === null || info.steps === undefined ? "counting steps…" : `${info.steps} steps`;
    this.countLabel.textContent = ` ${info.dialect || info.kind} · ${steps}`;
    // What a step is, where the trace's level makes it worth saying (a call-level trace's steps
    // are its calls, returns and exceptions, as diff counts them; show counts only the exceptions).
    if (this.stepNote) {
      this.stepNote.textContent = info.stepNote || "";
      this.stepNote.hidden = !info.stepNote;
    }
    if (this.valueBox) this.valueBox.hidden = !info.hasValues;
    if (this.summaryList) this.drawSummary(info);
  }

  drawSummary(info) {
    const summary = info.summary;
    if (summary && typeof summary === "object") {
      clear(this.summaryList, Object.entries(summary).filter(([, value]) => value !== null && value !== undefined)
        .map(([key, value]) => [el("dt", { text: key }), el("dd", { text: show(value) })]));
    } else {
      clear(this.summaryList, el("dd", { class: "muted", text: info.ready === false ? "reading the trace…" : "no summary line (the run did not end normally)" }));
    }
  }

  // Everything one step needs, fetched together.
  async load(step) {
    const api = this.app.backend;
    const here = await this.cache.get(step);
    if (!here) return { step, here: null };
    if (this.info.ready === false) {
      // The server shows the first steps while it reads the trace; the stack, values and
      // source need its tables, and come with the redraw once it has them.
      return { step, here, frames: [], values: [], around: null, early: true };
    }
    const asks = [api.stack(this.t, step)];
    asks.push(this.info.hasValues ? api.values(this.t, step) : Promise.resolve({ values: [] }));
    if (this.client) {
      asks.push(this.cache.range(Math.max(0, step - OPS_AROUND), step + OPS_AROUND));
    } else if (here.file) {
      asks.push(this.source(here.file));
    } else {
      asks.push(Promise.resolve(null));
    }
    const [stack, values, around] = await Promise.all(asks);
    return { step, here, frames: stack.frames || [], values: values.values || [], around };
  }

  source(file) {
    let found = this.sources.get(file);
    if (!found) {
      found = this.app.backend.source(this.t, file);
      found.catch(() => this.sources.delete(file));
      this.sources.set(file, found);
    }
    return found;
  }

  draw(data, other) {
    this.data = data;
    const here = data.here;
    if (!here) {
      clear(this.opList, el("dd", { class: "muted", text: `no step ${data.step} in this trace` }));
      return;
    }
    const differs = new Set();
    if (other && other.here && this.app.diff) {
      for (const field of this.app.diff.fields || []) {
        if (!sameValue(fieldOf(here, field), fieldOf(other.here, field))) differs.add(field);
      }
    } else if (other && !other.here && this.app.diff) {
      differs.add("step");
    }
    this.drawOp(here, differs);
    this.drawFrames(data.frames);
    if (data.early) this.frameList.replaceChildren(el("li", { class: "muted", text: "reading the trace…" }));
    if (this.info.hasValues) this.drawValues(data.values, other && other.here ? other.values : null);
    if (this.client) {
      this.drawOps(data.around || [], here);
      this.drawEvm(here, other && other.here ? other.here : null);
    } else if (!data.early) {
      this.drawSource(here, data.around);
    }
  }

  drawOp(here, differs) {
    const rows = [
      ["step", here.step],
      ["pc", here.pc],
      ["op", here.op !== undefined ? `${here.opName ?? ""} (${here.op})` : here.opName],
      ["gas", here.gas !== undefined ? gasText(here.gas) : undefined],
      ["gasCost", here.gasCost],
      ["depth", here.depth],
      ["line", here.lineno],
      ["function", here.function],
      ["file", here.file],
      ["thread", here.thread],
      ["event", here.event],
      ["error", here.error],
      ["trace line", here.line],
    ];
    const compared = (name) => (name === "op" ? differs.has("op") || differs.has("opName") : differs.has(name));
    clear(this.opList, rows.filter(([, value]) => value !== undefined && value !== null && value !== "").map(([name, value]) => {
      const mark = compared(name) ? " differs" : "";
      return [
        el("dt", { class: mark.trim(), text: (mark ? "≠ " : "") + name }),
        el("dd", { class: `${mark.trim()} f-${name.replace(" ", "-")}`, text: show(value), title: name === "file" ? value : null }),
      ];
    }));
    if (here.error) this.opList.classList.add("has-error");
    else this.opList.classList.remove("has-error");
    for (const field of ["locals", "globals", "stack"]) {
      if (differs.has(field)) this.opList.append(el("dt", { class: "differs", text: "≠ " + field }), el("dd", { class: "differs", text: "differ (see below)" }));
    }
  }

  drawFrames(frames) {
    const inner = frames.slice().sort((a, b) => b.depth - a.depth);
    clear(this.frameList, inner.map((frame) => {
      const where = frame.file ? `${shortPath(frame.file)}:${frame.line ?? "?"}` : "";
      const jump = frame.callStep !== null && frame.callStep !== undefined
        ? el("button", { type: "button", class: "link", title: "jump to the start of this call",
          onclick: () => this.app.go(this.t, frame.callStep), text: `step ${frame.callStep}` })
        : null;
      return el("li", { class: frame.function === this.app.selectedFunction ? "selected" : "" },
        el("button", { type: "button", class: "frame", title: "select this function for next/previous call (c, Shift+C)",
          onclick: () => this.app.selectFunction(frame.function) },
        el("span", { class: "fn", text: frame.function ?? "?" }), " ",
        el("span", { class: "muted", text: where })),
        el("span", { class: "muted", text: ` depth ${frame.depth}${frame.thread !== null && frame.thread !== undefined ? " thread " + frame.thread : ""} ` }),
        jump);
    }));
    if (inner.length === 0) this.frameList.append(el("li", { class: "muted", text: "no frame" }));
  }

  drawValues(values, otherValues) {
    const otherByName = new Map((otherValues || []).map((v) => [v.scope + " " + v.name, v.value]));
    const current = this.data.step;
    clear(this.valueBody, values.map((v) => {
      const key = v.scope + " " + v.name;
      const differs = otherValues && (!otherByName.has(key) || !sameValue(otherByName.get(key), v.value));
      const fresh = v.changedAt === current;
      return el("tr", { class: [fresh ? "changed" : "", differs ? "differs" : ""].join(" ").trim() || null },
        el("th", { scope: "row", text: (differs ? "≠ " : "") + v.name + (String(v.scope).startsWith("global") ? " (global)" : "") }),
        el("td", { class: "value", text: show(v.value) }),
        el("td", {}, v.changedAt === null || v.changedAt === undefined ? "" :
          el("button", { type: "button", class: "link", onclick: () => this.app.go(this.t, v.changedAt), text: `step ${v.changedAt}` })));
    }));
    if (values.length === 0) this.valueBody.append(el("tr", {}, el("td", { colspan: "3", class: "muted", text: "no values recorded yet in this frame" })));
  }

  async drawSource(here) {
    const file = here.file;
    if (file !== this.shownFile) {
      this.shownFile = file;
      this.lineItems = new Map();
      this.sourceTitle.textContent = "Source " + shortPath(file);
      this.sourceTitle.title = file || "";
      clear(this.sourceList);
      this.sourceNote.textContent = "";
      let answer = null;
      try {
        answer = file ? await this.source(file) : null;
      } catch (error) {
        answer = { text: null, reason: String(error.message || error), hits: {} };
      }
      if (this.shownFile !== file) return;
      if (!answer || answer.text === null || answer.text === undefined) {
        this.sourceNote.textContent = `source not shown: ${(answer && answer.reason) || "this step names no file"}`;
      } else {
        const hits = answer.hits || {};
        const lines = answer.text.split("\n");
        if (lines.length > 1 && lines[lines.length - 1] === "") lines.pop();
        const items = lines.map((text, i) => {
          const n = i + 1;
          const count = hits[n] ?? hits[String(n)];
          const item = el("li", { class: "src-line", dataset: { line: String(n) }, title: "click: next hit of this line (h)" },
            el("span", { class: "hits", title: "times this line was entered", text: count ? String(count) : "" }),
            el("span", { class: "ln", text: String(n) }),
            el("code", { text: text || " " }));
          item.addEventListener("click", () => this.app.selectLine(this.t, file, n));
          this.lineItems.set(n, item);
          return item;
        });
        this.sourceList.append(...items);
      }
    }
    this.markLines(here);
  }

  markLines(here) {
    for (const item of this.sourceList.querySelectorAll(".current, .selected")) {
      item.classList.remove("current", "selected");
      item.removeAttribute("aria-current");
    }
    const chosen = this.app.selectedLine;
    if (chosen && chosen.t === this.t && chosen.file === here.file) {
      const item = this.lineItems.get(chosen.line);
      if (item) item.classList.add("selected");
    }
    const item = this.lineItems.get(here.lineno);
    if (item) {
      item.classList.add("current");
      item.setAttribute("aria-current", "step");
      if (here.error) item.classList.add("error");
      scrollInto(this.sourceList, item);
    }
  }

  // Once the panes are laid out (their heights depend on what the others show), bring the
  // current line into view again.
  recenter() {
    const current = this.sourceList.querySelector(".current");
    if (current) scrollInto(this.sourceList, current);
  }

  drawOps(around, here) {
    clear(this.sourceList, around.map((s) => {
      const item = el("li", { class: ["op-row", s.step === here.step ? "current" : "", s.error ? "error" : ""].join(" ").trim(),
        dataset: { step: String(s.step) } },
      el("span", { class: "ln", text: String(s.step) }),
      el("code", { text: `${String(s.pc).padStart(5)} ${(s.opName ?? String(s.op)).padEnd(14)} d${s.depth} ${gasText(s.gas)}${s.error ? "  ✖ " + s.error : ""}` }));
      item.addEventListener("click", () => this.app.go(this.t, s.step));
      if (s.step === here.step) item.setAttribute("aria-current", "step");
      return item;
    }));
    const current = this.sourceList.querySelector(".current");
    if (current) scrollInto(this.sourceList, current);
  }

  drawEvm(here, other) {
    // The server sends a client's stack top first, as the panel shows it.
    const stack = Array.isArray(here.stack) ? here.stack : null;
    const otherStack = other && Array.isArray(other.stack) ? other.stack : null;
    const stackList = el("ol", { class: "evm-stack", start: "0" });
    for (const [i, item] of (stack || []).entries()) {
      const differs = otherStack && (i >= otherStack.length || !sameValue(otherStack[i], item));
      stackList.append(el("li", { class: differs ? "differs" : null, text: (differs ? "≠ " : "") + show(item) }));
    }
    if (stack && stack.length === 0) stackList.append(el("li", { class: "muted empty", text: "empty" }));
    const memory = memoryRows(here.memory);
    clear(this.evmBox,
      el("h3", { class: "box-title", text: `Stack (top first${stack ? ", " + stack.length + " items" : ""})` }),
      stack ? stackList : el("p", { class: "muted", text: "not recorded" }),
      el("h3", { class: "box-title", text: "Memory" + (here.memSize !== undefined ? ` (memSize ${show(here.memSize)})` : "") }),
      memory.length ? el("pre", { class: "memory" }, memory.join("\n")) : el("p", { class: "muted", text: here.memory === undefined ? "not recorded" : "empty" }),
      el("h3", { class: "box-title", text: "returnData" }),
      el("pre", { class: "memory" }, recorded(here.returnData)),
      el("dl", { class: "op" }, el("dt", { text: "refund" }), el("dd", { class: "f-refund", text: recorded(here.refund) })));
  }
}

function recorded(value) {
  return value === undefined || value === null ? "not recorded" : show(value);
}

function gasText(gas) {
  if (gas === undefined || gas === null) return "";
  if (typeof gas === "string" && /^0x[0-9a-f]+$/i.test(gas)) {
    const value = BigInt(gas);
    return value > 0xffffffffffffn ? gas : `${gas} (${value})`;
  }
  return show(gas);
}

function memoryRows(memory) {
  if (memory === undefined || memory === null) return [];
  const hex = Array.isArray(memory) ? memory.map((word) => String(word).replace(/^0x/, "")).join("") : String(memory).replace(/^0x/, "");
  const rows = [];
  for (let offset = 0; offset < hex.length; offset += 64) {
    rows.push(`${(offset / 2).toString(16).padStart(4, "0")}: ${hex.slice(offset, offset + 64)}`);
  }
  return rows;
}

function scrollInto(container, item) {
  const top = item.offsetTop; // the container is positioned (view.css)
  const view = container.scrollTop;
  if (top < view || top > view + container.clientHeight - item.offsetHeight) {
    container.scrollTop = Math.max(0, top - container.clientHeight / 2);
  }
}
