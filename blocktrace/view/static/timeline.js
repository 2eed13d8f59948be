// The call timeline: each call a bar over the step axis, nested by depth (a flame chart laid
// along time). A click on a bar jumps to the call's first step; a click elsewhere to that step.
// The wheel zooms around the pointer; the server drops calls narrower than a pixel.

import { clear, el, shortPath } from "./dom.js";

const ROW = 15;

export class Timeline {
  constructor(app, t, info) {
    this.app = app;
    this.t = t;
    this.steps = Math.max(1, info.steps || 1);
    this.from = 0;
    this.to = this.steps;
    this.asked = 0;
    this.bars = el("div", { class: "bars" });
    this.cursor = el("div", { class: "cursor", "aria-hidden": "true" });
    this.note = el("span", { class: "muted" });
    this.track = el("div", { class: "track", title: "click: jump to that step; wheel: zoom" }, this.bars, this.cursor);
    const label = app.diffMode ? (t === 0 ? "A" : "B") : "";
    this.root = el("div", { class: "timeline-row", dataset: { t: String(t) } },
      el("div", { class: "timeline-head" }, label ? el("span", { class: "side-label", text: label }) : null,
        el("button", { type: "button", class: "link", onclick: () => this.zoomTo(0, this.steps), text: "whole trace" }), " ", this.note),
      this.track);
    this.track.addEventListener("click", (event) => {
      if (event.target.closest(".bar")) return;
      const box = this.track.getBoundingClientRect();
      const step = Math.floor(this.from + ((event.clientX - box.left) / box.width) * (this.to - this.from));
      this.app.go(this.t, Math.min(this.steps - 1, Math.max(0, step)));
    });
    this.track.addEventListener("wheel", (event) => {
      event.preventDefault();
      const box = this.track.getBoundingClientRect();
      const at = this.from + ((event.clientX - box.left) / box.width) * (this.to - this.from);
      const scale = event.deltaY > 0 ? 1.5 : 1 / 1.5;
      const span = Math.max(20, (this.to - this.from) * scale);
      const from = at - (at - this.from) * (span / (this.to - this.from));
      this.zoomTo(from, from + span);
    }, { passive: false });
  }

  setSteps(steps) {
    this.steps = Math.max(1, steps || 1);
  }

  zoomTo(from, to) {
    const span = Math.min(this.steps, Math.max(20, to - from));
    const start = Math.min(Math.max(0, from), this.steps - span);
    this.from = Math.floor(start);
    this.to = Math.ceil(start + span);
    return this.load();
  }

  async load() {
    const asked = ++this.asked;
    const width = Math.max(100, Math.floor(this.track.clientWidth || 1000));
    let answer;
    try {
      answer = await this.app.backend.timeline(this.t, this.from, this.to - 1, width);
    } catch (error) {
      this.note.textContent = `timeline unavailable: ${error.message || error}`;
      return;
    }
    if (asked !== this.asked) return;
    const calls = answer.calls || [];
    const minDepth = calls.reduce((low, call) => Math.min(low, call.depth), Infinity);
    const span = this.to - this.from;
    const bars = calls.map((call) => {
      const left = ((Math.max(call.start, this.from) - this.from) / span) * 100;
      const right = ((Math.min(call.end + 1, this.to) - this.from) / span) * 100;
      const bar = el("div", {
        class: "bar" + (call.function === this.app.selectedFunction ? " selected" : ""),
        title: `${call.function} (${shortPath(call.file)}) steps ${call.start}–${call.end}, depth ${call.depth}`,
        dataset: { start: String(call.start), function: call.function ?? "" },
        text: call.function ?? "?",
      });
      bar.style.left = `${left}%`;
      bar.style.width = `${Math.max(right - left, 0.15)}%`;
      bar.style.top = `${(call.depth - minDepth) * ROW}px`;
      bar.addEventListener("click", () => {
        this.app.selectFunction(call.function);
        this.app.go(this.t, call.start);
      });
      return bar;
    });
    const rows = calls.length ? calls.reduce((high, call) => Math.max(high, call.depth), 0) - minDepth + 1 : 1;
    this.bars.style.height = `${rows * ROW}px`;
    clear(this.bars, bars);
    this.note.textContent = `steps ${this.from}–${this.to - 1}: ${calls.length} call(s)` +
      (answer.truncated ? " (more not drawn; zoom in)" : "") + (calls.length === 0 ? " — no calls recorded" : "");
    this.place(this.current ?? 0);
  }

  place(step) {
    this.current = step;
    const at = ((step + 0.5 - this.from) / (this.to - this.from)) * 100;
    this.cursor.hidden = at < 0 || at > 100;
    this.cursor.style.left = `${at}%`;
  }

  markFunction(name) {
    for (const bar of this.bars.children) bar.classList.toggle("selected", bar.dataset.function === name);
  }
}
