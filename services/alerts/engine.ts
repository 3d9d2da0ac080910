/**
 * The alert lifecycle, as Prometheus Alertmanager does it, pure (callers pass
 * `now`; the service persists what comes out before anything is sent).
 *
 * - An alert is identified by its fingerprint: a hash of its sorted labels.
 * - A condition that holds goes `pending`, and `firing` once it held for the
 *   rule's `for`; once it stops holding, the alert is `resolved` after the
 *   rule's `clearFor` without it (hysteresis against flapping). An alert
 *   raised by a single event (a jam, a forced door) resolves by itself after
 *   `resolveAfter` without a repeat.
 * - Alerts are grouped (by alert name and the group's labels); a group's
 *   first notification waits `groupWait` (an alert that resolves within it
 *   sends nothing), a change in the group waits `groupInterval`, an unchanged
 *   firing group is repeated after `repeatInterval`. Resolved alerts are sent
 *   once (send_resolved) if they had been sent as firing.
 * - Silences (label matchers until an end time) and inhibition rules (a
 *   source alert that fires mutes matching targets sharing some labels)
 *   suppress notifications, not the alerts' state.
 */
import crypto from "node:crypto";
import type { Severity } from "./dingtalk";

export type AlertState = "pending" | "firing" | "resolved";

export interface RuleSpec {
	name: string;
	severity: Severity;
	/** How long the condition must hold before the alert fires (0 = at once). */
	forMs: number;
	/** How long the condition must be gone before the alert resolves. */
	clearForMs: number;
	/** For alerts raised by one event: resolved after this long without a repeat. */
	resolveAfterMs?: number;
	/** Labels (besides alertname) that group this rule's alerts into one notification. */
	groupBy: string[];
}

export interface AlertRecord {
	/** The fingerprint. */
	_id: string;
	name: string;
	severity: Severity;
	labels: Record<string, string>;
	summary: string;
	state: AlertState;
	/** When the condition started holding this time. */
	activeSince: number;
	/** When it fired (startsAt), null while pending. */
	firingSince: number | null;
	/** When the condition stopped holding (null while it holds). */
	inactiveSince: number | null;
	resolvedAt: number | null;
	value?: number | string;
	threshold?: number | string;
	updatedAt: number;
}

export interface Signal {
	rule: string;
	labels: Record<string, string>;
	/** The condition holds (true) or no longer holds (false). Event alerts send only true. */
	active: boolean;
	summary: string;
	value?: number | string;
	threshold?: number | string;
}

/** Hash of the sorted labels (alertname included). */
export function fingerprint(labels: Record<string, string>): string {
	const canon = Object.keys(labels).sort().map(k => `${k}=${labels[k]}`).join("\u0000");
	return `alr_${crypto.createHash("sha256").update(canon).digest("hex").slice(0, 24)}`;
}

export const labelsOf = (rule: string, labels: Record<string, string>) => ({ alertname: rule, ...labels });

/** An alert after a signal (null: nothing to record — a condition that is gone and was never raised). */
export function observe(prev: AlertRecord | null, s: Signal, rule: RuleSpec, now: number): AlertRecord | null {
	const labels = labelsOf(s.rule, s.labels);
	if (!s.active) {
		if (!prev || prev.state === "resolved" || prev.inactiveSince !== null) return prev;
		return { ...prev, inactiveSince: now, updatedAt: now };
	}
	const base = { value: s.value, threshold: s.threshold, summary: s.summary, updatedAt: now };
	if (!prev || prev.state === "resolved") {
		const firing = rule.forMs === 0;
		return {
			_id: fingerprint(labels), name: s.rule, severity: rule.severity, labels, state: firing ? "firing" : "pending",
			activeSince: now, firingSince: firing ? now : null, inactiveSince: null, resolvedAt: null, ...base,
		};
	}
	return { ...prev, ...base, inactiveSince: null };
}

/** Time passing: pending → firing after `for`, → resolved after `clearFor` (or `resolveAfter`) without the condition. */
export function advance(a: AlertRecord, rule: RuleSpec, now: number): AlertRecord {
	if (a.state === "resolved") return a;
	if (a.inactiveSince !== null && now - a.inactiveSince >= rule.clearForMs) {
		// A pending alert that never fired just goes away (resolved without ever being sent).
		return { ...a, state: "resolved", resolvedAt: now, updatedAt: now };
	}
	if (rule.resolveAfterMs !== undefined && a.inactiveSince === null && now - a.updatedAt >= rule.resolveAfterMs) {
		return { ...a, state: "resolved", resolvedAt: now, inactiveSince: a.updatedAt, updatedAt: now };
	}
	if (a.state === "pending" && a.inactiveSince === null && now - a.activeSince >= rule.forMs) {
		return { ...a, state: "firing", firingSince: now, updatedAt: now };
	}
	return a;
}

// ---------------------------------------------------------------------------
// Silences and inhibition

export interface Matcher {
	label: string;
	value: string;
	/** `value` is a regular expression (anchored). */
	regex?: boolean;
}

export interface Silence {
	_id: string;
	matchers: Matcher[];
	startsAt: number;
	endsAt: number;
	comment: string;
	createdBy: string;
}

export function matches(labels: Record<string, string>, matchers: Matcher[]): boolean {
	return matchers.every(m => {
		const v = labels[m.label] ?? "";
		if (!m.regex) return v === m.value;
		try {
			return new RegExp(`^(?:${m.value})$`).test(v);
		} catch {
			return false;
		}
	});
}

export const silencedBy = (a: AlertRecord, silences: Silence[], now: number) =>
	silences.find(s => s.startsAt <= now && now < s.endsAt && matches(a.labels, s.matchers));

export interface InhibitRule {
	source: Matcher[];
	target: Matcher[];
	/** Labels source and target must share for the source to mute the target. */
	equal: string[];
}

export function inhibitedBy(a: AlertRecord, firing: AlertRecord[], rules: InhibitRule[]): AlertRecord | undefined {
	for (const r of rules) {
		if (!matches(a.labels, r.target)) continue;
		const src = firing.find(f => f._id !== a._id && f.state === "firing" && matches(f.labels, r.source) && r.equal.every(l => f.labels[l] === a.labels[l]));
		if (src) return src;
	}
	return undefined;
}

// ---------------------------------------------------------------------------
// Grouping and the notifications it produces

export interface Timing {
	groupWaitMs: number;
	groupIntervalMs: number;
	repeatIntervalMs: number;
}

export interface GroupState {
	/** The group key: alertname and the group labels. */
	_id: string;
	severity: Severity;
	/** When the group last sent (null: never). */
	lastSentAt: number | null;
	/** What the last notification said of each alert: fingerprint → state. */
	sent: Record<string, "firing" | "resolved">;
	/** When an alert first showed up in the group since it last sent (the group_wait starts there). */
	since: number | null;
	/** Notifications made so far: the next one's id derives from it, so a crash before this state is written makes the same ids again. */
	seq: number;
	/** Random, from the group's creation: ids never repeat those of another store (DingTalk would drop a repeated msgUuid). */
	nonce: string;
}

export const groupKeyOf = (a: AlertRecord, rule: RuleSpec) =>
	`grp_${crypto.createHash("sha256").update([a.name, ...rule.groupBy.map(l => `${l}=${a.labels[l] ?? ""}`)].join("\u0000")).digest("hex").slice(0, 24)}`;

export interface FlushDecision {
	/** The alerts to notify now (firing ones, and resolved ones once), or none. */
	alerts: AlertRecord[];
	group: GroupState;
}

/**
 * Whether a group sends now, and what. `alerts` are the group's alerts that are
 * firing or resolved and not suppressed (silenced, inhibited).
 */
export function flush(g: GroupState, alerts: AlertRecord[], t: Timing, now: number): FlushDecision | null {
	const firing = alerts.filter(a => a.state === "firing");
	// Resolved alerts are sent once, and only if they had been sent as firing.
	const resolved = alerts.filter(a => a.state === "resolved" && g.sent[a._id] === "firing");
	const changed = firing.some(a => g.sent[a._id] !== "firing") || resolved.length > 0;
	if (!firing.length && !resolved.length) return null;
	let due: number;
	if (g.lastSentAt === null) due = (g.since ?? now) + t.groupWaitMs;
	else if (changed) due = g.lastSentAt + t.groupIntervalMs;
	else due = g.lastSentAt + t.repeatIntervalMs;
	if (now < due) return null;
	if (!changed && !firing.length) return null;
	const sent: GroupState["sent"] = {};
	for (const a of firing) sent[a._id] = "firing";
	return { alerts: [...firing, ...resolved], group: { ...g, lastSentAt: now, sent, since: null, seq: (g.seq ?? 0) + 1 } };
}

// ---------------------------------------------------------------------------
// A robot's queue

export const ROBOT_RATE = { perWindow: 20, windowMs: 60_000 };

/** Exponential backoff with full jitter: 1 s, 2 s, 4 s … capped at 5 min. */
export function backoffMs(attempt: number, random: () => number = Math.random): number {
	const cap = Math.min(300_000, 1000 * 2 ** Math.min(attempt, 12));
	return Math.round(cap / 2 + (random() * cap) / 2);
}

export interface QueuedLike {
	_id: string;
	severity: Severity;
	createdAt: number;
	nextAttemptAt: number;
	/** A request with it may have reached DingTalk: it is sent again only under its own id, never merged. */
	tried?: boolean;
}

const rank = (s: Severity) => (s === "P1" ? 0 : s === "P2" ? 1 : 2);

/** The order a robot sends in: P1 first, then the oldest. */
export const byPriority = <Q extends QueuedLike>(a: Q, b: Q) => rank(a.severity) - rank(b.severity) || a.createdAt - b.createdAt;

/** Notifications merged into one digest at most (a digest stays well under DingTalk's size limit). */
export const MAX_PER_DIGEST = 25;

/**
 * What a robot sends now, given how many requests it made in the last window:
 * one request per due notification while they fit the budget; when more are
 * waiting than that, digests of up to MAX_PER_DIGEST notifications each, so a
 * burst reaches the group in a few messages instead of waiting minutes behind
 * the limit. A notification already tried goes alone (its msgUuid may have
 * reached DingTalk; merged under another id it could show twice). Always P1
 * first, then the oldest; what does not fit waits.
 */
export function plan<Q extends QueuedLike>(queue: Q[], requestsInWindow: number, now: number, perWindow = ROBOT_RATE.perWindow): Q[][] {
	const due = queue.filter(q => q.nextAttemptAt <= now).sort(byPriority);
	const budget = Math.max(0, perWindow - requestsInWindow);
	const singles = due.length <= budget;
	const batches: Q[][] = [];
	let digest: Q[] | null = null;
	for (const q of due) {
		if (singles || q.tried) {
			if (batches.length < budget) batches.push([q]);
		} else if (digest && digest.length < MAX_PER_DIGEST) digest.push(q);
		else if (batches.length < budget) batches.push((digest = [q]));
	}
	return batches;
}
