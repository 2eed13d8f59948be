// The local backend: answers the server's questions (docs/VIEW.md) in the page itself, from
// the one JSON object a --html page inlines: {meta, verify, steps, calls, sources, diff}, with
// each per-trace member a list indexed by t. The semantics are the server's; keep them equal.

const SEARCH_LIMIT = 200;
const TIMELINE_LIMIT = 5000;

function sameThread(a, b) {
  return (a.thread ?? null) === (b.thread ?? null);
}

function textOf(value) {
  return typeof value === "string" ? value : JSON.stringify(value);
}

function prepare(blob, t) {
  const steps = (blob.steps || [])[t] || [];
  const calls = ((blob.calls || [])[t] || []).slice().sort((a, b) => a.start - b.start || a.depth - b.depth);
  const callStarts = new Set(calls.map((call) => call.start));
  const sources = (blob.sources || [])[t] || {};
  return { steps, calls, callStarts, sources };
}

// The calls enclosing `step` on its thread, outermost first.
function enclosing(trace, step) {
  const here = trace.steps[step];
  return trace.calls
    .filter((call) => call.start <= step && step <= call.end && sameThread(call, here))
    .sort((a, b) => a.depth - b.depth);
}

function stackAt(trace, step) {
  const here = trace.steps[step];
  if (!here) return [];
  const calls = enclosing(trace, step);
  if (calls.length === 0) {
    return [{ function: here.function ?? null, file: here.file ?? null, line: here.lineno ?? null,
      depth: here.depth, thread: here.thread ?? null, callStep: null }];
  }
  return calls.map((call, i) => {
    let line = here.lineno ?? null;
    const child = calls[i + 1];
    if (child && call.depth < here.depth) {
      line = null;
      for (let k = child.start - 1; k >= call.start; k--) {
        const s = trace.steps[k];
        if (s && s.depth === call.depth && sameThread(s, here)) {
          line = s.lineno ?? null;
          break;
        }
      }
    }
    return { function: call.function, file: call.file, line, depth: call.depth,
      thread: call.thread ?? null, callStep: call.start };
  });
}

function valuesAt(trace, step) {
  const here = trace.steps[step];
  if (!here) return [];
  const frame = enclosing(trace, step).filter((call) => call.depth === here.depth).pop();
  const begin = frame ? frame.start : 0;
  const locals = new Map();
  const globals = new Map();
  const note = (into, recorded, at) => {
    for (const [name, value] of Object.entries(recorded || {})) {
      const old = into.get(name);
      if (!old || textOf(old.value) !== textOf(value)) into.set(name, { value, changedAt: at });
    }
  };
  for (let k = 0; k <= step; k++) {
    const s = trace.steps[k];
    if (!s || !s.values) continue;
    note(globals, s.values.globals, s.step);
    if (k >= begin && s.depth === here.depth && sameThread(s, here)) note(locals, s.values.locals, s.step);
  }
  const list = (scope, map) => [...map].map(([name, v]) => ({ scope, name, value: v.value, changedAt: v.changedAt }));
  return [...list("locals", locals), ...list("globals", globals)];
}

// Whether step k enters its line: the frame's previous step (over the calls it made) is on
// another line, or there is none. A return from a call into the same line is not an entry.
function isLineEntry(trace, k) {
  const s = trace.steps[k];
  for (let j = k - 1; j >= 0; j--) {
    const before = trace.steps[j];
    if (!sameThread(before, s) || before.depth > s.depth) continue;
    if (before.depth < s.depth) return true;
    return before.lineno !== s.lineno || before.file !== s.file;
  }
  return true;
}

function scan(trace, step, forward, test) {
  const n = trace.steps.length;
  if (forward) {
    for (let k = step + 1; k < n; k++) if (test(trace.steps[k], k)) return k;
  } else {
    for (let k = Math.min(step, n) - 1; k >= 0; k--) if (test(trace.steps[k], k)) return k;
  }
  return null;
}

function navigate(trace, step, how, extra) {
  const n = trace.steps.length;
  const here = trace.steps[step];
  if (!here) return null;
  const depth = here.depth;
  const opts = extra || {};
  switch (how) {
    case "next": return step + 1 < n ? step + 1 : null;
    case "prev": return step > 0 ? step - 1 : null;
    case "over": return scan(trace, step, true, (s) => s.depth <= depth && sameThread(s, here));
    case "back-over": return scan(trace, step, false, (s) => s.depth <= depth && sameThread(s, here));
    case "out": return scan(trace, step, true, (s) => s.depth < depth && sameThread(s, here));
    case "back-out": return scan(trace, step, false, (s) => s.depth < depth && sameThread(s, here));
    case "next-exception": return scan(trace, step, true, (s) => Boolean(s.error));
    case "prev-exception": return scan(trace, step, false, (s) => Boolean(s.error));
    case "next-hit":
    case "prev-hit": {
      const line = Number(opts.line);
      return scan(trace, step, how === "next-hit",
        (s, k) => s.lineno === line && s.file === opts.file && isLineEntry(trace, k));
    }
    case "next-call": {
      const call = trace.calls.find((c) => c.start > step && c.function === opts.function);
      return call ? call.start : null;
    }
    case "prev-call": {
      const found = trace.calls.filter((c) => c.start < step && c.function === opts.function).pop();
      return found ? found.start : null;
    }
    default: throw new Error(`nav: unknown how=${how}`);
  }
}

// Steps where a recorded value (of `name`, or of any name) that contains `text` was recorded,
// each only when it differs from that name's previous value in the same frame.
function searchValues(trace, name, text, limit, from) {
  const matches = [];
  const frames = new Map();
  const clientFields = ["stack", "memory", "returnData", "refund"];
  const last = new Map();
  for (const s of trace.steps) {
    const key = `${s.thread ?? ""}|${s.depth}`;
    if (trace.callStarts.has(s.step) || !frames.has(key)) frames.set(key, new Map());
    if (s.values) {
      const seen = frames.get(key);
      for (const scope of ["locals", "globals"]) {
        for (const [n, value] of Object.entries(s.values[scope] || {})) {
          if (name && n !== name) continue;
          const shown = textOf(value);
          const id = scope + " " + n;
          if (seen.get(id) === shown) continue;
          seen.set(id, shown);
          if (shown.includes(text) && s.step >= from) matches.push({ step: s.step, scope, name: n, value });
        }
      }
    } else {
      for (const field of clientFields) {
        if (s[field] === undefined || (name && name !== field)) continue;
        const shown = textOf(s[field]).toLowerCase();
        const had = last.get(field);
        last.set(field, shown);
        if (had !== shown && shown.includes(text.toLowerCase()) && s.step >= from) {
          matches.push({ step: s.step, name: field, value: s[field] });
        }
      }
    }
    if (matches.length >= limit && s.step + 1 < trace.steps.length) {
      return { matches, truncated: true, next: s.step + 1 };
    }
  }
  return { matches, truncated: false, next: null };
}

// `to` is the last step of the range (inclusive), as the server reads it.
function timeline(trace, from, to, buckets) {
  const shortest = buckets > 0 ? (to - from + 1) / buckets : 0;
  const calls = trace.calls.filter((c) => c.end >= from && c.start <= to && c.end - c.start + 1 >= shortest);
  return { calls: calls.slice(0, TIMELINE_LIMIT), truncated: calls.length > TIMELINE_LIMIT };
}

export function localBackend(blob) {
  const traces = ((blob.meta && blob.meta.traces) || []).map((_, t) => prepare(blob, t));
  const trace = (t) => {
    const found = traces[Number(t)];
    if (!found) throw new Error(`no trace ${t} in this page`);
    return found;
  };
  const answer = (make) => new Promise((resolve) => resolve(make()));
  return {
    kind: "local",
    meta: () => answer(() => blob.meta),
    verify: (t) => answer(() => (blob.verify || [])[t] || { status: "unusable", reason: "no verification in this page" }),
    window: (t, from, count) => answer(() => {
      const start = Math.max(0, Number(from));
      return { steps: trace(t).steps.slice(start, start + Number(count)) };
    }),
    stack: (t, step) => answer(() => ({ frames: stackAt(trace(t), Number(step)) })),
    values: (t, step) => answer(() => ({ values: valuesAt(trace(t), Number(step)) })),
    source: (t, file) => answer(() => trace(t).sources[file]
      || { text: null, reason: "this page holds no source for this file", hits: {} }),
    nav: (t, step, how, extra) => answer(() => ({ step: navigate(trace(t), Number(step), how, extra) })),
    search: (t, name, text, limit, from) => answer(() => searchValues(trace(t), name || "", text || "", limit || SEARCH_LIMIT, Number(from || 0))),
    timeline: (t, from, to, buckets) => answer(() => timeline(trace(t), Number(from), Number(to), Number(buckets))),
    diff: () => answer(() => blob.diff || { status: "unusable", error: "this page holds no diff" }),
  };
}
