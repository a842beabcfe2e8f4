// Three-valued matching: "maybe" is what a check answers when the facts it needs are unknown.
// Combined with Kleene logic, so a known "no" still decides (a rule that cannot match is skipped
// even if its process section is unknown).

export type Tri = "yes" | "no" | "maybe";

export interface Outcome {
  result: Tri;
  /** What matched, in words ("remote 10.1.2.3 in set:corp"); for "maybe", the parts known to match. */
  because: string[];
  /** For "maybe": the facts that would decide ("process", "remote hostnames"). */
  needs: string[];
}

export const yes = (...because: string[]): Outcome => ({ result: "yes", because, needs: [] });
export const no = (): Outcome => ({ result: "no", because: [], needs: [] });
export const maybe = (...needs: string[]): Outcome => ({ result: "maybe", because: [], needs });

/** Every part must match: any "no" is no, else any "maybe" is maybe. */
export function all(parts: Outcome[]): Outcome {
  if (parts.some((p) => p.result === "no")) return no();
  const unknown = parts.filter((p) => p.result === "maybe");
  // a loop, not flatMap and a spread: every rule that may match, and each of its sections, comes
  // here, and those two were a third of the time of a judgement a rule decides
  const because: string[] = [];
  for (const p of parts) for (const b of p.because) because.push(b);
  if (unknown.length > 0)
    return { result: "maybe", because, needs: [...new Set(unknown.flatMap((p) => p.needs))] };
  return { result: "yes", because, needs: [] };
}

/** Some part must match: the first "yes" wins, else any "maybe" is maybe. */
export function any(parts: Outcome[]): Outcome {
  const hit = parts.find((p) => p.result === "yes");
  if (hit) return hit;
  const unknown = parts.filter((p) => p.result === "maybe");
  if (unknown.length > 0) return maybe(...new Set(unknown.flatMap((p) => p.needs)));
  return no();
}

export function not(part: Outcome): Outcome {
  if (part.result === "maybe") return part;
  return part.result === "yes" ? no() : yes();
}
