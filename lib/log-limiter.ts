/**
 * Rate limit for warnings that outsiders or a failing part can repeat at will
 * (denied MQTT clients, a cabinet that keeps refusing): an operator must see
 * them, but nobody must be able to flood the log. Pure, with an injectable
 * clock.
 *
 * Per key (a client id, an address, a cabinet): the first occurrence is
 * logged, then at most one line per interval, carrying the number of
 * occurrences not logged since the previous line. The keys kept are capped (the
 * least recently logged is forgotten first; it is then logged again on its
 * next denial), so memory stays bounded whatever the attacker sends.
 */
export interface LogLimiterOptions {
	intervalMs: number;
	maxKeys: number;
	now?: () => number;
}

export class LogLimiter {
	private readonly keys = new Map<string, { loggedAt: number; suppressed: number }>();
	private readonly now: () => number;

	constructor(private readonly opts: LogLimiterOptions) {
		this.now = opts.now ?? Date.now;
	}

	/** An occurrence for `key`: null to stay quiet, or a line is due with how many were left out since the last one. */
	note(key: string): { suppressed: number } | null {
		const now = this.now();
		const k = this.keys.get(key);
		if (k && now - k.loggedAt < this.opts.intervalMs) {
			k.suppressed++;
			return null;
		}
		const suppressed = k?.suppressed ?? 0;
		this.keys.delete(key); // re-inserted last: the map's order is least recently logged first
		this.keys.set(key, { loggedAt: now, suppressed: 0 });
		if (this.keys.size > this.opts.maxKeys) this.keys.delete(this.keys.keys().next().value as string);
		return { suppressed };
	}

	/** Keys remembered now (bounded by maxKeys). */
	get size(): number {
		return this.keys.size;
	}
}

/** An attacker-chosen string (client id, topic) as it goes into a log line: quoted, escaped and short. */
export function logSafe(s: string, max = 120): string {
	return JSON.stringify(s.length > max ? `${s.slice(0, max)}…` : s);
}
