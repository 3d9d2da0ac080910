/**
 * The alert rules: each a named rule with a severity, its `for`/clear
 * hysteresis and how its alerts group. The signals that feed them come from
 * the platform's events (alerts.service.ts); thresholds come from config.
 */
import type { AlertsConfig } from "../../config";
import type { InhibitRule, RuleSpec } from "./engine";

export function alertRules(c: AlertsConfig): Record<string, RuleSpec> {
	const t = c.thresholds;
	const state = (name: string, severity: RuleSpec["severity"], groupBy: string[], forMs = 0): RuleSpec => ({ name, severity, forMs, clearForMs: t.clearForMs, groupBy });
	const event = (name: string, severity: RuleSpec["severity"], groupBy: string[]): RuleSpec => ({
		name, severity, forMs: 0, clearForMs: t.clearForMs, resolveAfterMs: t.eventResolveAfterMs, groupBy,
	});
	const list: RuleSpec[] = [
		// Cabinets and points (the door actors' link events: last will, or silence for 3 × HEARTBEAT_SEC).
		state("CabinetOffline", "P2", ["pointId"]),
		state("PointOffline", "P1", ["pointId"]),
		// Doors (the door actors' anomalies).
		event("DoorFault", "P2", ["cabinetId"]),
		event("DoorForcedOpen", "P1", ["cabinetId"]),
		event("DoorLeftOpen", "P3", ["cabinetId"]),
		event("CommandOutcomeUnknown", "P3", ["cabinetId"]),
		// Unlocks that fail, per cabinet and fleet-wide, over a window with a minimum of attempts.
		state("UnlockFailureRate", "P2", ["cabinetId"]),
		state("FleetUnlockFailureRate", "P1", []),
		// Money.
		state("PaymentSignatureFailures", "P2", []),
		event("PaymentAmountMismatch", "P1", []),
		event("PaymentPendingTooLong", "P3", []),
		state("ReconciliationMismatch", "P1", []),
		event("PaidDoorWillNotOpen", "P1", ["pointId"]),
		// The mesh and the orders.
		state("CircuitBreakerOpen", "P2", ["node"]),
		event("OrderStuck", "P3", []),
		// The alert channel itself (sent through a fallback robot).
		event("DingTalkRobotUnusable", "P1", ["robot"]),
	];
	return Object.fromEntries(list.map(r => [r.name, r]));
}

/** A point with half its cabinets offline mutes the per-cabinet alerts of that point. */
export const INHIBIT_RULES: InhibitRule[] = [
	{ source: [{ label: "alertname", value: "PointOffline" }], target: [{ label: "alertname", value: "CabinetOffline" }], equal: ["pointId"] },
	{ source: [{ label: "alertname", value: "FleetUnlockFailureRate" }], target: [{ label: "alertname", value: "UnlockFailureRate" }], equal: [] },
];

/** doors.anomaly kinds → rules. */
export const ANOMALY_RULES: Record<string, string> = {
	jammed: "DoorFault",
	sensor_fault: "DoorFault",
	hardware_fault: "DoorFault",
	forced_open: "DoorForcedOpen",
	tamper: "DoorForcedOpen",
	door_left_open: "DoorLeftOpen",
	command_unknown: "CommandOutcomeUnknown",
};

/** What an anomaly is, for a message. */
export const ANOMALY_WORDS: Record<string, string> = {
	jammed: "卡住 jammed",
	sensor_fault: "传感器故障 sensor fault",
	hardware_fault: "硬件故障 hardware fault",
	forced_open: "被强行打开 forced open",
	tamper: "被撬 tamper alarm",
	door_left_open: "长时间未关 left open too long",
	command_unknown: "开门指令结果未知 command outcome unknown",
};

/**
 * A sliding count of attempts and failures (unlock rates, refused payment
 * notifications), kept in 60 buckets of the window: memory stays the same at
 * 2 000 opens a second, and the window's edge is exact to a bucket.
 */
export class RateWindow {
	private readonly buckets = new Map<number, { attempts: number; failures: number }>();
	private readonly bucketMs: number;

	constructor(private readonly windowMs: number) {
		this.bucketMs = Math.max(1, Math.ceil(windowMs / 60));
	}

	add(at: number, failed: boolean): void {
		const k = Math.floor(at / this.bucketMs);
		const b = this.buckets.get(k) ?? { attempts: 0, failures: 0 };
		b.attempts++;
		if (failed) b.failures++;
		this.buckets.set(k, b);
		this.trim(at);
	}

	counts(now: number): { attempts: number; failures: number } {
		this.trim(now);
		let attempts = 0;
		let failures = 0;
		for (const b of this.buckets.values()) {
			attempts += b.attempts;
			failures += b.failures;
		}
		return { attempts, failures };
	}

	private trim(now: number): void {
		const oldest = Math.floor((now - this.windowMs) / this.bucketMs);
		for (const k of this.buckets.keys()) if (k <= oldest) this.buckets.delete(k);
	}
}
