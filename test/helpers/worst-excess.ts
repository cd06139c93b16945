/**
 * The element furthest outside `|got - want| <= tol * max(floor, |want|)`: its excess over the bound
 * (<= 0 when every element is within; a NaN is outside) and its index. One expect on this stands for
 * one per element, which would dominate a test of a million values.
 */
export function worstExcess(
  got: ArrayLike<number>,
  want: ArrayLike<number>,
  tol: number,
  floor = 1,
): { excess: number; at: number } {
  let worst = { excess: Number.NEGATIVE_INFINITY, at: -1 };
  for (let i = 0; i < want.length; i++) {
    const b = want[i] as number;
    const excess = Math.abs((got[i] as number) - b) - tol * Math.max(floor, Math.abs(b));
    if (!(excess <= worst.excess)) worst = { excess, at: i };
  }
  return worst;
}
