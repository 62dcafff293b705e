// Word error rate: normalise (lower case, no punctuation), then a word-level Levenshtein alignment.

/** Lower case, hyphens as spaces, punctuation and apostrophes removed, split into words. */
export function normaliseWords(text) {
  return (text || "")
    .toLowerCase()
    .replace(/-/g, " ")
    .replace(/[^\p{L}\p{N}\s']/gu, " ")
    .replace(/'/g, "")
    .split(/\s+/)
    .filter(Boolean);
}

/**
 * Align reference and hypothesis words.
 * @returns {{ops: {op: "ok"|"sub"|"del"|"ins", ref?: string, hyp?: string}[], errors: number, words: number, wer: number}}
 */
export function align(reference, hypothesis) {
  const ref = normaliseWords(reference);
  const hyp = normaliseWords(hypothesis);
  const rows = ref.length + 1;
  const cols = hyp.length + 1;
  const cost = new Uint32Array(rows * cols);
  for (let i = 0; i < rows; i += 1) cost[i * cols] = i;
  for (let j = 0; j < cols; j += 1) cost[j] = j;
  for (let i = 1; i < rows; i += 1) {
    for (let j = 1; j < cols; j += 1) {
      const diagonal = cost[(i - 1) * cols + j - 1] + (ref[i - 1] === hyp[j - 1] ? 0 : 1);
      cost[i * cols + j] = Math.min(diagonal, cost[(i - 1) * cols + j] + 1, cost[i * cols + j - 1] + 1);
    }
  }
  const ops = [];
  let i = ref.length;
  let j = hyp.length;
  while (i > 0 || j > 0) {
    const here = cost[i * cols + j];
    if (i > 0 && j > 0 && here === cost[(i - 1) * cols + j - 1] + (ref[i - 1] === hyp[j - 1] ? 0 : 1)) {
      ops.push({ op: ref[i - 1] === hyp[j - 1] ? "ok" : "sub", ref: ref[i - 1], hyp: hyp[j - 1] });
      i -= 1;
      j -= 1;
    } else if (i > 0 && here === cost[(i - 1) * cols + j] + 1) {
      ops.push({ op: "del", ref: ref[i - 1] });
      i -= 1;
    } else {
      ops.push({ op: "ins", hyp: hyp[j - 1] });
      j -= 1;
    }
  }
  ops.reverse();
  const errors = cost[rows * cols - 1];
  return { ops, errors, words: ref.length, wer: ref.length ? errors / ref.length : hyp.length ? 1 : 0 };
}

/** Word error rate of a hypothesis against a reference (0 = perfect). */
export function wer(reference, hypothesis) {
  return align(reference, hypothesis).wer;
}
