// The keyboard, in one table: the page's help lists it and the key handler reads it, so the
// two cannot disagree. docs/VIEW.md repeats it for readers of the docs.

export const KEYS = [
  { keys: ["ArrowRight", "j"], act: "next", label: "→ or j", what: "step forward one op" },
  { keys: ["ArrowLeft", "k"], act: "prev", label: "← or k", what: "step back one op" },
  { keys: ["n"], act: "over", label: "n", what: "step over: next op at the same or a lower depth" },
  { keys: ["N"], act: "back-over", label: "Shift+N", what: "step back over" },
  { keys: ["o"], act: "out", label: "o", what: "step out: next op at a lower depth" },
  { keys: ["O"], act: "back-out", label: "Shift+O", what: "step back out" },
  { keys: ["Home"], act: "first", label: "Home", what: "first step" },
  { keys: ["End"], act: "last", label: "End", what: "last step" },
  { keys: ["e"], act: "next-exception", label: "e", what: "next exception (an op with an error)" },
  { keys: ["E"], act: "prev-exception", label: "Shift+E", what: "previous exception" },
  { keys: ["h"], act: "next-hit", label: "h", what: "next hit of the selected source line (click a line to select it; default: the current line)" },
  { keys: ["H"], act: "prev-hit", label: "Shift+H", what: "previous hit of the selected line" },
  { keys: ["c"], act: "next-call", label: "c", what: "next call of the selected function (click a frame or a timeline bar; default: the current function)" },
  { keys: ["C"], act: "prev-call", label: "Shift+C", what: "previous call of the selected function" },
  { keys: ["d"], act: "divergence", label: "d", what: "diff: the first divergence" },
  { keys: ["]"], act: "next-hunk", label: "]", what: "diff: next hunk" },
  { keys: ["["], act: "prev-hunk", label: "[", what: "diff: previous hunk" },
  { keys: ["s"], act: "switch-side", label: "s", what: "diff: step the other trace (the other follows by the alignment)" },
  { keys: ["g"], act: "goto", label: "g", what: "jump to step N (type it, Enter)" },
  { keys: ["/"], act: "search", label: "/", what: "search recorded values: the name, Tab, the text; Enter lists the steps" },
  { keys: ["?"], act: "help", label: "?", what: "show or hide this list" },
  { keys: ["Escape"], act: "escape", label: "Esc", what: "leave a text box, close this list" },
];

export function actionForKey(key) {
  const found = KEYS.find((entry) => entry.keys.includes(key));
  return found ? found.act : null;
}
