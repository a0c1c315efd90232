// IP address text as ClickHouse's IPv4 and IPv6 parameters take it, checked without node:net
// (the planner imports no I/O module).

const V4_PART = /^(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]\d|\d)$/;
const V6_GROUP = /^[0-9a-fA-F]{1,4}$/;

/** Dotted-quad IPv4, each part 0–255 without leading zeros. */
export function isIPv4Text(text: string): boolean {
  const parts = text.split('.');
  return parts.length === 4 && parts.every((p) => V4_PART.test(p));
}

/** IPv6 text (RFC 4291 2.2): eight hex groups, at most one `::` for a run of zeros, an IPv4 address as the last two. */
export function isIPv6Text(text: string): boolean {
  const halves = text.split('::');
  if (halves.length > 2) return false;
  const groupsOf = (half: string): string[] => (half === '' ? [] : half.split(':'));
  const head = groupsOf(halves[0] ?? '');
  const tail = halves.length === 2 ? groupsOf(halves[1] ?? '') : [];
  const groups = [...head, ...tail];
  // Only the address's last part may be an IPv4 address; it stands for two groups.
  const closing = (halves.length === 2 ? tail : head).at(-1);
  let count = groups.length;
  if (closing?.includes('.')) {
    if (!isIPv4Text(closing)) return false;
    groups.pop();
    count += 1;
  }
  if (!groups.every((g) => V6_GROUP.test(g))) return false;
  return halves.length === 2 ? count <= 7 : count === 8;
}
