/**
 * alerts: operators learn about offline cabinets, jammed doors and payment
 * trouble in their DingTalk groups — every alert delivered, none twice, and
 * no robot pushed past DingTalk's limit.
 *
 * - Platform events become rule signals (alerts/rules.ts); the lifecycle is
 *   Alertmanager's (alerts/engine.ts): fingerprints, for/clear hysteresis,
 *   grouping with group_wait / group_interval / repeat_interval per severity,
 *   send_resolved, silences, inhibition.
 * - Alert state, group state and every notification are written before
 *   anything is sent. A notification's id is DingTalk's `msgUuid`, reused on
 *   every retry, so a restart in the middle of a send sends it once.
 * - Per robot: a persisted queue worked P1 first, at most 20 messages per
 *   minute (digests when alerts pile up); 130101 pauses the robot (its queue
 *   goes to the fallback robot meanwhile); network errors, timeouts, 5xx and
 *   -1 are retried with exponential backoff and jitter; 310000 and unusable
 *   robots are not retried blindly: the robot is set aside and an alert about
 *   it goes out through the fallback.
 */
import crypto from "node:crypto";
import type { Context, ServiceSchema, ServiceSettingSchema } from "moleculer";
import type { Config, RobotConfig } from "../config";
import { createDbMixin, type EntityDefinition } from "../mixins/db.mixin";
import { Repository } from "../mixins/repository";
import { crashPoint } from "../lib/crash-points";
import type { AppMeta } from "../types/auth";
import { created } from "../lib/created";
import { invalid, notFound } from "../types/errors";
import { idParam, pageParams, type Page, type PageParams } from "../types/params";
import { alertsThatFit, classifyAnswer, renderMessage, SEVERITIES, signedUrl, type MessageAlert, type SendOutcome, type Severity } from "./alerts/dingtalk";
import {
	advance, backoffMs, fingerprint, flush, groupKeyOf, inhibitedBy, labelsOf, observe, plan, silencedBy,
	type AlertRecord, type GroupState, type Matcher, type Signal, type Silence,
} from "./alerts/engine";
import { BUSINESS_METRICS, meters, wentFiring, type Meter } from "../lib/business-metrics";
import { alertRules, ANOMALY_RULES, ANOMALY_WORDS, INHIBIT_RULES, RateWindow } from "./alerts/rules";
import type {
	AlertChangedEvent, BreakerEvent, CabinetLinkEvent, DoorAnomalyEvent, DoorOpenCompletedEvent, OrderStuckEvent, PaymentStaleEvent, ReconciliationCheckedEvent, RefundProposedEvent,
} from "../types/events";

/** A message for one robot: alerts as they were when it was made (what the group said). */
export interface NotificationDoc {
	/** Also DingTalk's msgUuid. */
	_id: string;
	robot: string;
	groupKey: string;
	severity: Severity;
	alerts: MessageAlert[];
	state: "queued" | "sent" | "failed" | "merged";
	attempts: number;
	nextAttemptAt: number;
	createdAt: number;
	sentAt: number | null;
	/** Merged into this digest (state "merged"). */
	into?: string;
	/** A request with it went out (it may have reached DingTalk): never merged after that. */
	tried?: boolean;
	lastError?: string;
}

interface RobotState {
	_id: string;
	/** Resting after 130101 until then. */
	pausedUntil: number;
	/** Set aside: its configuration is refused (310000) or it is gone. */
	unusable: string | null;
	/** A robot refused for its configuration is tried again (one request) after this; 0 = not before its settings change. */
	probeAt: number;
	/** Its settings when it was set aside: changed settings put it back to work. */
	configHash: string;
	/** When its recent requests went out (DingTalk counts requests, failed ones too). Written before each request. */
	requests: number[];
}

const AlertEntity: EntityDefinition = {
	collection: "alerts", idPrefix: "alr",
	fields: { name: "string", severity: "string", labels: "object", summary: "string", state: "string", activeSince: "number", firingSince: "number", inactiveSince: "number", resolvedAt: "number", value: "object", threshold: "object", updatedAt: "number" },
	indexes: [{ fields: { state: 1, updatedAt: 1 } }],
};
const GroupEntity: EntityDefinition = { collection: "alert_groups", idPrefix: "grp", fields: { severity: "string", lastSentAt: "number", sent: "object", since: "number", seq: "number", nonce: "string" } };
const NotificationEntity: EntityDefinition = {
	collection: "alert_notifications", idPrefix: "ntf",
	fields: { robot: "string", groupKey: "string", severity: "string", alerts: "array", state: "string", attempts: "number", nextAttemptAt: "number", createdAt: "number", sentAt: "number", into: "string", tried: "boolean", lastError: "string" },
	indexes: [{ fields: { robot: 1, state: 1, nextAttemptAt: 1 } }, { fields: { robot: 1, sentAt: 1 }, sparse: true }],
};
const SilenceEntity: EntityDefinition = { collection: "alert_silences", idPrefix: "sil", fields: { matchers: "array", startsAt: "number", endsAt: "number", comment: "string", createdBy: "string" }, indexes: [{ fields: { endsAt: 1 } }] };
const RobotEntity: EntityDefinition = { collection: "alert_robots", idPrefix: "rbt", fields: { pausedUntil: "number", unusable: "string", probeAt: "number", configHash: "string", requests: "array", holder: "string", leaseUntil: "number" } };

interface Settings extends ServiceSettingSchema {
	rest: string;
}

interface Methods {
	signal(s: Signal): Promise<void>;
	written(prev: AlertRecord | null, next: AlertRecord): void;
	evaluate(now: number): Promise<void>;
	notifyGroups(now: number): Promise<void>;
	robotsFor(a: AlertRecord): RobotConfig[];
	dispatch(now: number): Promise<void>;
	sendBatch(robot: RobotConfig, batch: NotificationDoc[], now: number): Promise<SendOutcome["kind"]>;
	robotState(name: string): Promise<RobotState>;
	setAside(robot: RobotConfig, outcome: SendOutcome & { reason: string }): Promise<void>;
	pointCabinets(pointId: string): Promise<number>;
	countRate(key: string, spec: RateSpec, failed: boolean): void;
	judgeRate(key: string, now: number): void;
	judgePoint(pointId: string, merchantId: string): Promise<void>;
	tick(): Promise<void>;
	restoreDigests(): Promise<void>;
	prune(now: number): Promise<void>;
	lead(now: number): Promise<boolean>;
}

/** The dispatcher's lease, a document beside the robots' state. */
const LEASE_ID = "$dispatcher";

interface RateSpec {
	rule: string;
	labels: Record<string, string>;
	min: number;
	ratio: number;
	what: string;
}


/** One message for several notifications (their alerts, worst severity, oldest time), queued under `id`. */
const digestOf = (id: string, robot: string, parts: NotificationDoc[], now: number): NotificationDoc => ({
	_id: id, robot, groupKey: "digest", severity: parts.map(b => b.severity).sort()[0], alerts: parts.flatMap(b => b.alerts),
	state: "queued", attempts: 0, nextAttemptAt: now, createdAt: Math.min(...parts.map(b => b.createdAt)), sentAt: null,
});

/** A robot's settings, as a hash: a robot set aside is tried again once they change. */
const robotHash = (r: RobotConfig | undefined) => crypto.createHash("sha256").update(JSON.stringify(r ?? null)).digest("hex").slice(0, 16);

interface Vars {
	repos: {
		alerts: Repository<AlertRecord>;
		groups: Repository<GroupState>;
		notifications: Repository<NotificationDoc>;
		silences: Repository<Silence>;
		robots: Repository<RobotState>;
	};
	metrics: { fired: Meter; sent: Meter };
	timer?: NodeJS.Timeout;
	ticking?: Promise<void>;
	prunedAt?: number;
	/** This replica holds the dispatcher lease. */
	leading?: boolean;
	/** Windowed rate rules (unlock failures per cabinet and fleet-wide, refused payment notifications). */
	rates: Map<string, RateSpec & { window: RateWindow; active: boolean }>;
	/** Cabinets per point, remembered a minute (for the point alert). */
	points: Map<string, { cabinets: number; at: number }>;
	/** Signals handled one at a time (each reads and writes its alert). */
	signals: Promise<unknown>;
}

type This = Vars & Methods & { broker: Context["broker"]; logger: any };

const matcherParam = { type: "object", strict: true, props: { label: { type: "string", min: 1, max: 100 }, value: { type: "string", max: 200 }, regex: { type: "boolean", optional: true } } };

export interface SilenceView { id: string; matchers: Matcher[]; startsAt: string; endsAt: string; comment: string; createdBy: string }
const silenceView = (s: Silence): SilenceView => ({
	id: s._id, matchers: s.matchers, startsAt: new Date(s.startsAt).toISOString(), endsAt: new Date(s.endsAt).toISOString(), comment: s.comment, createdBy: s.createdBy,
});

export interface AlertView {
	id: string;
	name: string;
	severity: Severity;
	state: string;
	labels: Record<string, string>;
	summary: string;
	startsAt: string | null;
	endsAt: string | null;
	silencedBy?: string;
	inhibitedBy?: string;
}

export function createAlertsService(config: Config, opts: { dataDir?: string | null } = {}): ServiceSchema<Settings, Methods, Vars> {
	const dataDir = opts.dataDir === undefined ? config.dataDir : opts.dataDir;
	const ac = config.alerts;
	const rules = alertRules(ac);
	const robots = new Map(ac.robots.map(r => [r.name, r]));
	// DingTalk's clock and ours differ by the request's travel: count a little longer than its window.
	const rateWindowMs = ac.rate.windowMs + Math.min(2000, Math.ceil(ac.rate.windowMs / 20));

	return {
		name: "alerts",
		mixins: [createDbMixin({ alerts: AlertEntity, groups: GroupEntity, notifications: NotificationEntity, silences: SilenceEntity, robots: RobotEntity }, { mongoUri: config.mongoUri, dataDir })],
		settings: { rest: "" },

		actions: {
			list: {
				rest: "GET /alerts",
				auth: ["admin", "operator"],
				summary: "Alerts with labels, severity, startsAt and endsAt (firing by default)",
				params: { state: { type: "enum", values: ["firing", "pending", "resolved", "all"], optional: true, default: "firing" }, ...pageParams },
				async handler(this: This, ctx: Context<{ state: string } & PageParams>): Promise<Page<AlertView>> {
					const query = ctx.params.state === "all" ? {} : { state: ctx.params.state };
					const { page, pageSize } = ctx.params;
					const [rows, total, silences, firing] = await Promise.all([
						this.repos.alerts.find({ query, sort: "-updatedAt", limit: pageSize, offset: (page - 1) * pageSize }),
						this.repos.alerts.count(query),
						this.repos.silences.find({ query: { endsAt: { $gt: Date.now() } } }),
						this.repos.alerts.find({ query: { state: "firing" } }),
					]);
					const now = Date.now();
					return {
						rows: rows.map(a => {
							const silence = silencedBy(a, silences, now);
							const source = inhibitedBy(a, firing, INHIBIT_RULES);
							return {
								id: a._id, name: a.name, severity: a.severity, state: a.state, labels: a.labels, summary: a.summary,
								startsAt: a.firingSince ? new Date(a.firingSince).toISOString() : null, endsAt: a.resolvedAt ? new Date(a.resolvedAt).toISOString() : null,
								...(silence ? { silencedBy: silence._id } : {}),
								...(source ? { inhibitedBy: source._id } : {}),
							};
						}),
						total, page, pageSize,
					};
				},
			},

			createSilence: {
				rest: "POST /alerts/silences",
				auth: ["admin", "operator"],
				summary: "Silence the alerts whose labels match, until endsAt",
				params: {
					matchers: { type: "array", items: matcherParam, min: 1, max: 20 },
					endsAt: { type: "date", convert: true },
					startsAt: { type: "date", convert: true, optional: true },
					comment: { type: "string", min: 1, max: 500, trim: true },
				},
				async handler(this: This, ctx: Context<{ matchers: Matcher[]; endsAt: Date; startsAt?: Date; comment: string }, AppMeta>) {
					const now = Date.now();
					const startsAt = ctx.params.startsAt?.getTime() ?? now;
					if (ctx.params.endsAt.getTime() <= Math.max(now, startsAt)) throw invalid([{ field: "endsAt", message: "endsAt must be in the future and after startsAt" }]);
					for (const m of ctx.params.matchers) {
						if (m.regex) {
							try {
								new RegExp(m.value);
							} catch {
								throw invalid([{ field: "matchers", message: `not a regular expression: ${m.value.slice(0, 50)}` }]);
							}
						}
					}
					const s = await this.repos.silences.insert({ matchers: ctx.params.matchers, startsAt, endsAt: ctx.params.endsAt.getTime(), comment: ctx.params.comment, createdBy: ctx.meta.user?.id ?? "platform" });
					created(ctx, `/alerts/silences/${s._id}`);
					return silenceView(s);
				},
			},

			listSilences: {
				rest: "GET /alerts/silences",
				auth: ["admin", "operator"],
				summary: "Silences in force or still to come, the soonest to end first",
				params: { ...pageParams },
				async handler(this: This, ctx: Context<PageParams>): Promise<Page<SilenceView>> {
					const query = { endsAt: { $gt: Date.now() } };
					const { page, pageSize } = ctx.params;
					const [rows, total] = await Promise.all([
						this.repos.silences.find({ query, sort: "endsAt", limit: pageSize, offset: (page - 1) * pageSize }),
						this.repos.silences.count(query),
					]);
					return { rows: rows.map(silenceView), total, page, pageSize };
				},
			},

			expireSilence: {
				rest: "DELETE /alerts/silences/:id",
				auth: ["admin", "operator"],
				summary: "Expire a silence now",
				params: { id: idParam },
				async handler(this: This, ctx: Context<{ id: string }, AppMeta>) {
					const s = await this.repos.silences.findById(ctx.params.id);
					if (!s) throw notFound("Silence", { id: ctx.params.id });
					const now = Date.now();
					if (s.endsAt > now) await this.repos.silences.updateWhere({ _id: s._id }, { $set: { endsAt: now } });
					return { id: s._id, endsAt: new Date(Math.min(s.endsAt, now)).toISOString() };
				},
			},

			/** Internal (tests, REPL): raise or clear a rule's condition directly. */
			signal: {
				visibility: "public",
				params: { rule: { type: "string", max: 100 }, labels: { type: "record", key: { type: "string", max: 100 }, value: { type: "string", max: 200 } }, active: "boolean", summary: { type: "string", max: 500 } },
				async handler(this: This, ctx: Context<Signal>) {
					await this.signal(ctx.params);
					return { ok: true };
				},
			},

			/** Internal (tests, REPL): evaluate and dispatch now. */
			tickNow: {
				visibility: "public",
				async handler(this: This) {
					await this.ticking?.catch(() => undefined);
					await this.tick();
					return { ok: true };
				},
			},
		},

		events: {
			"doors.cabinet.offline"(this: This, ctx: Context<CabinetLinkEvent>) {
				const { cabinetId, pointId, merchantId, reason } = ctx.params;
				void this.signal({ rule: "CabinetOffline", labels: { cabinetId, pointId, merchantId }, active: true, summary: `柜组离线 Cabinet ${cabinetId} offline (${reason})` })
					.then(() => this.judgePoint(pointId, merchantId));
			},
			"doors.cabinet.online"(this: This, ctx: Context<CabinetLinkEvent>) {
				const { cabinetId, pointId, merchantId } = ctx.params;
				void this.signal({ rule: "CabinetOffline", labels: { cabinetId, pointId, merchantId }, active: false, summary: `Cabinet ${cabinetId} online` })
					.then(() => this.judgePoint(pointId, merchantId));
			},
			"doors.anomaly"(this: This, ctx: Context<DoorAnomalyEvent>) {
				const rule = ANOMALY_RULES[ctx.params.kind];
				if (!rule) return;
				const { doorId, cabinetId, pointId, merchantId, kind } = ctx.params;
				void this.signal({ rule, labels: { doorId, cabinetId, pointId, merchantId, kind }, active: true, summary: `柜门异常 Door ${doorId}: ${ANOMALY_WORDS[kind] ?? kind}` });
			},
			"doors.open.completed"(this: This, ctx: Context<DoorOpenCompletedEvent>) {
				const { cabinetId, pointId, merchantId, ok } = ctx.params;
				const t = ac.thresholds;
				this.countRate(`cab:${cabinetId}`, { rule: "UnlockFailureRate", labels: { cabinetId, pointId, merchantId }, min: t.unlockMinAttemptsCabinet, ratio: t.unlockFailureRatio, what: "开锁失败率 Unlock failures" }, !ok);
				this.countRate("fleet", { rule: "FleetUnlockFailureRate", labels: {}, min: t.unlockMinAttemptsFleet, ratio: t.unlockFailureRatio, what: "全网开锁失败率 Fleet unlock failures" }, !ok);
			},
			"billing.notification.rejected"(this: This) {
				this.countRate("signatures", { rule: "PaymentSignatureFailures", labels: {}, min: ac.thresholds.badSignatureBurst, ratio: 1, what: "支付通知验签失败 Payment notifications refused" }, true);
			},
			"billing.payment.amountMismatch"(this: This, ctx: Context<{ paymentId: string; orderId: string; expectedFen: number; notifiedFen: number }>) {
				const p = ctx.params;
				void this.signal({ rule: "PaymentAmountMismatch", labels: { paymentId: p.paymentId }, active: true, summary: `支付金额不符 Payment ${p.paymentId}: notified ${p.notifiedFen} fen, expected ${p.expectedFen}`, value: p.notifiedFen, threshold: p.expectedFen });
			},
			"billing.payment.stale"(this: This, ctx: Context<PaymentStaleEvent>) {
				const { paymentId, orderId, ageMs } = ctx.params;
				void this.signal({ rule: "PaymentPendingTooLong", labels: { paymentId, orderId }, active: true, summary: `支付长时间未完成 Payment ${paymentId} pending for ${Math.round(ageMs / 60_000)} min`, value: `${Math.round(ageMs / 60_000)} min`, threshold: `${Math.round(ac.thresholds.paymentPendingMs / 60_000)} min` });
			},
			"billing.reconciliation.checked"(this: This, ctx: Context<ReconciliationCheckedEvent>) {
				const { date, mismatches } = ctx.params;
				void this.signal({ rule: "ReconciliationMismatch", labels: { date }, active: mismatches > 0, summary: `对账差异 Reconciliation of ${date}: ${mismatches} mismatch(es)`, value: mismatches, threshold: 0 });
			},
			"orders.refund.proposed"(this: This, ctx: Context<RefundProposedEvent>) {
				const { orderId, pointId, merchantId, cabinetId, doorId, reason } = ctx.params;
				void this.signal({ rule: "PaidDoorWillNotOpen", labels: { orderId, pointId, merchantId, cabinetId, doorId }, active: true, summary: `已付款柜门打不开 Paid order ${orderId}: ${reason}` });
			},
			"orders.order.stuck"(this: This, ctx: Context<OrderStuckEvent>) {
				const { orderId, status, minutes, pointId, merchantId } = ctx.params;
				void this.signal({ rule: "OrderStuck", labels: { orderId, status, pointId, merchantId }, active: true, summary: `订单卡住 Order ${orderId} ${status} for ${minutes} min`, value: `${minutes} min` });
			},
			"node.breaker.opened"(this: This, ctx: Context<BreakerEvent>) {
				const { node, target, action } = ctx.params;
				void this.signal({ rule: "CircuitBreakerOpen", labels: { node, target, action }, active: true, summary: `熔断 Circuit breaker open on ${node}: calls to ${action} on ${target} stopped` });
			},
			"node.breaker.closed"(this: This, ctx: Context<BreakerEvent>) {
				const { node, target, action } = ctx.params;
				void this.signal({ rule: "CircuitBreakerOpen", labels: { node, target, action }, active: false, summary: "" });
			},
		},

		methods: {
			/** A rule's condition changed: the alert is updated and written (one at a time). */
			signal(this: This, s: Signal) {
				const run = this.signals.then(async () => {
					const rule = rules[s.rule];
					if (!rule) return;
					// Labels that say nothing (unknown merchant, say) are left out, so the same alert has one fingerprint.
					s = { ...s, labels: Object.fromEntries(Object.entries(s.labels).filter(([, v]) => typeof v === "string" && v !== "")) };
					const id = fingerprint(labelsOf(s.rule, s.labels));
					const prev = await this.repos.alerts.findById(id);
					const next = observe(prev, s, rule, Date.now());
					if (!next || next === prev) return;
					if (prev) await this.repos.alerts.updateWhere({ _id: id }, { $set: { ...next } });
					else await this.repos.alerts.insert(next);
					this.written(prev, next);
				});
				this.signals = run.catch(err => this.logger.warn(`Alert signal ${s.rule} failed: ${err.message}`));
				return this.signals as Promise<void>;
			},

			/**
			 * An alert change written: one that went firing is counted; one that fired, or a fired one that
			 * resolved, is broadcast to the gateways (GET /events). Pending ones, and pending ones that went
			 * away, were never shown: nothing is said about them.
			 */
			written(this: This, prev: AlertRecord | null, next: AlertRecord) {
				if (wentFiring(prev, next)) this.metrics.fired.inc({ severity: next.severity });
				if (prev?.state === next.state || next.state === "pending" || next.firingSince === null) return;
				void this.broker.broadcast("alerts.alert.changed", {
					id: next._id, name: next.name, severity: next.severity, state: next.state, labels: next.labels, startsAt: new Date(next.firingSince).toISOString(),
					...(next.resolvedAt ? { endsAt: new Date(next.resolvedAt).toISOString() } : {}),
				} satisfies AlertChangedEvent);
			},

			/** One attempt (failed or not) for a windowed rate rule; judged at once. */
			countRate(this: This, key: string, spec: RateSpec, failed: boolean) {
				const now = Date.now();
				let r = this.rates.get(key);
				if (!r) this.rates.set(key, (r = { ...spec, window: new RateWindow(ac.thresholds.unlockWindowMs), active: false }));
				r.window.add(now, failed);
				this.judgeRate(key, now);
			},

			/**
			 * A rate rule against its window: fires with at least `min` attempts of which `ratio` failed. Only a
			 * change (or a firing one's new value) reaches the store: a healthy stream of opens costs nothing.
			 */
			judgeRate(this: This, key: string, now: number) {
				const r = this.rates.get(key);
				if (!r) return;
				const { attempts, failures } = r.window.counts(now);
				const share = attempts ? failures / attempts : 0;
				const active = attempts >= r.min && share >= r.ratio;
				if (!active && !r.active) {
					if (!attempts) this.rates.delete(key);
					return;
				}
				r.active = active;
				void this.signal({
					rule: r.rule, labels: r.labels, active, summary: `${r.what}: ${failures}/${attempts}`,
					value: r.ratio >= 1 ? failures : `${Math.round(share * 100)} %`, threshold: r.ratio >= 1 ? r.min : `${Math.round(r.ratio * 100)} % of ≥ ${r.min}`,
				});
			},

			/**
			 * A point with at least half its cabinets offline is one alert (it mutes the cabinets' own). Counted
			 * from the stored cabinet alerts whose condition holds, so a restart or a second replica agrees.
			 */
			async judgePoint(this: This, pointId: string, merchantId: string) {
				const n = await this.pointCabinets(pointId);
				const off = await this.repos.alerts.count({ name: "CabinetOffline", "labels.pointId": pointId, state: { $in: ["pending", "firing"] }, inactiveSince: null });
				const need = Math.max(1, Math.ceil(n * ac.thresholds.pointOfflineRatio));
				await this.signal({
					rule: "PointOffline", labels: { pointId, merchantId }, active: n > 0 && off >= need,
					summary: `网点 ${off}/${n} 柜组离线 ${off} of ${n} cabinets offline at point ${pointId}`, value: off, threshold: need,
				});
			},

			/** Time passing for every alert that is not resolved (pending → firing, → resolved). */
			async evaluate(this: This, now: number) {
				const open = await this.repos.alerts.find({ query: { state: { $in: ["pending", "firing"] } } });
				for (const a of open) {
					const rule = rules[a.name];
					if (!rule) continue;
					const next = advance(a, rule, now);
					if (next === a) continue;
					const moved = await this.repos.alerts.updateWhere({ _id: a._id, updatedAt: a.updatedAt }, { $set: { ...next } });
					if (moved !== 1) continue;
					this.written(a, next);
				}
			},

			/** Groups that are due make their notifications (written, queued) for their robots. */
			async notifyGroups(this: This, now: number) {
				const recent = await this.repos.alerts.find({ query: { $or: [{ state: "firing" }, { state: "resolved", resolvedAt: { $gt: now - 24 * 3600_000 } }] } });
				const silences = await this.repos.silences.find({ query: { endsAt: { $gt: now } } });
				const firing = recent.filter(a => a.state === "firing");
				const byGroup = new Map<string, AlertRecord[]>();
				for (const a of recent) {
					const rule = rules[a.name];
					if (!rule || silencedBy(a, silences, now) || inhibitedBy(a, firing, INHIBIT_RULES)) continue;
					const key = groupKeyOf(a, rule);
					(byGroup.get(key) ?? byGroup.set(key, []).get(key)!).push(a);
				}
				for (const [key, alerts] of byGroup) {
					const severity = alerts[0].severity;
					const anyFiring = alerts.some(a => a.state === "firing");
					let g = await this.repos.groups.findById(key);
					if (!g) {
						if (!anyFiring) continue;
						g = { _id: key, severity, lastSentAt: null, sent: {}, since: now, seq: 0, nonce: crypto.randomBytes(8).toString("hex") };
						await this.repos.groups.insert(g);
					} else if (g.since === null && alerts.some(a => a.state === "firing" && g!.sent[a._id] !== "firing")) {
						// Something new in the group: its group_wait (or group_interval) starts now.
						g = { ...g, since: now };
						await this.repos.groups.updateWhere({ _id: key }, { $set: { since: now } });
					}
					const d = flush(g, alerts, ac.timing[severity], now);
					if (!d) {
						// Everything new resolved within group_wait: nothing was sent, and the next alert waits afresh.
						if (!anyFiring && g.since !== null) await this.repos.groups.updateWhere({ _id: key }, { $set: { since: null } });
						continue;
					}
					const msg: MessageAlert[] = d.alerts.map(a => ({
						name: a.name, severity: a.severity, state: a.state === "firing" ? "firing" : "resolved", labels: a.labels, summary: a.summary,
						startsAt: a.firingSince ?? a.activeSince, endsAt: a.resolvedAt, value: a.value, threshold: a.threshold,
					}));
					// The notifications first, then the group's new state. Their ids come from the group's count of
					// notifications: a crash between the two makes the same ids again, which are written once.
					for (const robot of this.robotsFor(d.alerts[0])) {
						const id = `ntf_${crypto.createHash("sha256").update(`${key}\u0000${robot.name}\u0000${g.nonce ?? ""}\u0000${g.seq ?? 0}`).digest("hex").slice(0, 24)}`;
						await this.repos.notifications
							.insert({ _id: id, robot: robot.name, groupKey: key, severity, alerts: msg, state: "queued", attempts: 0, nextAttemptAt: now, createdAt: now, sentAt: null })
							.catch(err => {
								if (!Repository.isDuplicateKeyError(err)) throw err;
							});
					}
					// A group whose alerts all resolved starts afresh (the next alert in it waits group_wait again).
					const over = !Object.keys(d.group.sent).length;
					await this.repos.groups.updateWhere({ _id: key }, { $set: { lastSentAt: over ? null : d.group.lastSentAt, sent: d.group.sent, since: null, seq: d.group.seq } });
				}
			},

			/** Robots for an alert: every merchant-specific one that takes it, and the first general one. */
			robotsFor(this: This, a: AlertRecord): RobotConfig[] {
				const fit = [...robots.values()].filter(r => (!r.severities || r.severities.includes(a.severity)) && (!r.merchantId || r.merchantId === a.labels.merchantId));
				const general = fit.find(r => !r.merchantId);
				return [...fit.filter(r => r.merchantId), ...(general ? [general] : [])];
			},

			async robotState(this: This, name: string): Promise<RobotState> {
				const hash = robotHash(robots.get(name));
				const found = await this.repos.robots.findById(name);
				// Written field by field (requests, a pause …): what was never written has its default.
				const defaults: RobotState = { _id: name, pausedUntil: 0, unusable: null, probeAt: 0, configHash: hash, requests: [] };
				const stored: RobotState = { ...defaults, ...(found as Partial<RobotState> | null), _id: name };
				// A robot set aside whose settings changed since is given its chance again.
				if (stored.unusable && stored.configHash !== hash) {
					await this.repos.robots.upsertById(name, { unusable: null, probeAt: 0, configHash: hash });
					return { ...stored, unusable: null, probeAt: 0, configHash: hash };
				}
				return stored;
			},

			/** Works every robot's queue: P1 first, within its rate, digests when they pile up. */
			async dispatch(this: This, now: number) {
				for (const robot of robots.values()) {
					const state = await this.robotState(robot.name);
					const queue = await this.repos.notifications.find({ query: { robot: robot.name, state: "queued" } });
					if (!queue.length) continue;
					const probing = !!state.unusable && state.probeAt > 0 && state.probeAt <= now;
					if (state.pausedUntil > now || (state.unusable && !probing)) {
						// Its queue goes to the fallback meanwhile (the same ids: a message is still sent once).
						const fb = robot.fallback ? robots.get(robot.fallback) : undefined;
						const fbState = fb ? await this.robotState(fb.name) : undefined;
						if (fb && fbState && fbState.pausedUntil <= now && !fbState.unusable) {
							await this.repos.notifications.updateWhere({ robot: robot.name, state: "queued" }, { $set: { robot: fb.name } });
						}
						continue;
					}
					const recent = (state.requests ?? []).filter(t => t > now - rateWindowMs);
					// A robot set aside for its configuration gets one request now and then, to learn it was fixed.
					const perWindow = probing ? Math.min(ac.rate.perWindow, recent.length + 1) : ac.rate.perWindow;
					for (const batch of plan(queue, recent.length, now, perWindow)) {
						const outcome = await this.sendBatch(robot, batch, now);
						if (outcome !== "sent" && outcome !== "retry" && outcome !== "rejected") break; // the robot rests or is set aside
					}
				}
			},

			/** One request: a notification, or a digest of several (written first, under its own id). */
			async sendBatch(this: This, robot: RobotConfig, batch: NotificationDoc[], now: number) {
				let n = batch[0];
				// A digest takes only the notifications it can show whole; the rest wait for the next request.
				const opts = { now, keyword: robot.keyword, atMobiles: robot.atMobiles, msgUuid: "" };
				while (batch.length > 1 && alertsThatFit(batch.flatMap(b => b.alerts), opts) < batch.reduce((k, b) => k + b.alerts.length, 0)) batch = batch.slice(0, -1);
				if (batch.length > 1) {
					// The digest's id comes from what it merges: made again after a crash, it is the same message.
					const id = `ntf_d${crypto.createHash("sha256").update(batch.map(b => b._id).sort().join(",")).digest("hex").slice(0, 24)}`;
					const digest = digestOf(id, robot.name, batch, now);
					// Merged first, the digest written after: a crash between leaves merged notifications without
					// their digest, which the start makes again (restoreDigests) — never one sent twice.
					await this.repos.notifications.updateWhere({ _id: { $in: batch.map(b => b._id) }, state: "queued" }, { $set: { state: "merged", into: id } });
					crashPoint(config.crashPoints, "alerts.merged"); // merged, the digest not written yet
					await this.repos.notifications.insert(digest).catch(err => {
						if (!Repository.isDuplicateKeyError(err)) throw err;
					});
					n = (await this.repos.notifications.findById(id)) ?? digest;
				}
				// Written before the request: the robot's rate survives a restart, and a notification that may
				// have reached DingTalk is never merged into another message.
				const state = await this.robotState(robot.name);
				const requests = [...(state.requests ?? []).filter(t => t > Date.now() - rateWindowMs), Date.now()];
				await this.repos.robots.upsertById(robot.name, { requests });
				if (!n.tried) await this.repos.notifications.updateWhere({ _id: n._id }, { $set: { tried: true } });
				const body = renderMessage(n.alerts, { now, keyword: robot.keyword, atMobiles: robot.atMobiles, msgUuid: n._id });
				let outcome: SendOutcome;
				try {
					const res = await fetch(signedUrl(robot.url, robot.secret, Date.now()), {
						method: "POST", headers: { "content-type": "application/json; charset=utf-8" }, body: JSON.stringify(body), signal: AbortSignal.timeout(ac.sendTimeoutMs),
					});
					// A robot's answer is small; a huge one is not read whole.
					const text = (await res.text()).slice(0, 4096);
					let parsed: unknown = null;
					try {
						parsed = JSON.parse(text);
					} catch {
						/* not JSON */
					}
					outcome = classifyAnswer(res.status, parsed);
				} catch (err) {
					outcome = { kind: "retry", reason: (err as Error).name === "TimeoutError" ? `no answer in ${ac.sendTimeoutMs} ms` : (err as Error).message };
				}
				this.metrics.sent.inc({ channel: "dingtalk", result: outcome.kind });
				switch (outcome.kind) {
					case "sent":
						crashPoint(config.crashPoints, "alerts.sent"); // DingTalk has it, the notification not marked sent yet
						await this.repos.notifications.updateWhere({ _id: n._id }, { $set: { state: "sent", sentAt: Date.now(), attempts: n.attempts + 1 } });
						if (state.unusable) {
							this.logger.info(`DingTalk robot ${robot.name} works again`);
							await this.repos.robots.upsertById(robot.name, { unusable: null, probeAt: 0 });
							void this.signal({ rule: "DingTalkRobotUnusable", labels: { robot: robot.name }, active: false, summary: "" });
						}
						break;
					case "retry":
						await this.repos.notifications.updateWhere({ _id: n._id }, { $set: { attempts: n.attempts + 1, nextAttemptAt: Date.now() + backoffMs(n.attempts), lastError: outcome.reason } });
						break;
					case "throttled":
						this.logger.warn(`DingTalk robot ${robot.name}: ${outcome.reason}; resting ${Math.round(ac.pauseMs / 1000)} s${robot.fallback ? `, ${robot.fallback} meanwhile` : ""}`);
						await this.repos.robots.upsertById(robot.name, { pausedUntil: Date.now() + ac.pauseMs });
						await this.repos.notifications.updateWhere({ _id: n._id }, { $set: { lastError: outcome.reason } });
						break;
					case "misconfigured":
					case "disabled":
						await this.repos.notifications.updateWhere({ _id: n._id }, { $set: { attempts: n.attempts + 1, lastError: outcome.reason } });
						await this.setAside(robot, outcome);
						break;
					case "rejected":
						this.logger.warn(`DingTalk robot ${robot.name} refused notification ${n._id}: ${outcome.reason}`);
						await this.repos.notifications.updateWhere({ _id: n._id }, { $set: { state: "failed", attempts: n.attempts + 1, lastError: outcome.reason } });
				}
				return outcome.kind;
			},

			/**
			 * A robot whose configuration is refused (310000) or that is gone: not tried blindly again. A refused
			 * configuration is probed with one request after the pause; a robot that is gone waits for new settings.
			 * Operators are told through the fallback.
			 */
			async setAside(this: This, robot: RobotConfig, outcome: SendOutcome & { reason: string }) {
				const already = (await this.robotState(robot.name)).unusable;
				if (!already) this.logger.error(`DingTalk robot ${robot.name} set aside: ${outcome.reason}`);
				const probeAt = outcome.kind === "misconfigured" ? Date.now() + ac.pauseMs : 0;
				await this.repos.robots.upsertById(robot.name, { unusable: outcome.reason, probeAt, configHash: robotHash(robot) });
				void this.signal({ rule: "DingTalkRobotUnusable", labels: { robot: robot.name }, active: true, summary: `钉钉机器人不可用 DingTalk robot ${robot.name}: ${outcome.reason}` });
			},

			/** A point's cabinet count (remembered a minute), for the point alert; 0 when merchants cannot say. */
			async pointCabinets(this: This, pointId: string): Promise<number> {
				const c = this.points.get(pointId);
				if (c && Date.now() - c.at < 60_000) return c.cabinets;
				const p = await this.broker.call<{ cabinets: unknown[] }, { pointId: string }>("merchants.pointForOrder", { pointId }).catch(() => null);
				if (p) this.points.set(pointId, { cabinets: p.cabinets.length, at: Date.now() });
				return p?.cabinets.length ?? 0;
			},

			/** Digests whose notifications were merged but which a crash kept from being written. */
			async restoreDigests(this: This) {
				const merged = await this.repos.notifications.find({ query: { state: "merged" } });
				const byDigest = new Map<string, NotificationDoc[]>();
				for (const m of merged) (byDigest.get(m.into!) ?? byDigest.set(m.into!, []).get(m.into!)!).push(m);
				for (const [id, parts] of byDigest) {
					if (await this.repos.notifications.findById(id)) continue;
					await this.repos.notifications.insert(digestOf(id, parts[0].robot, parts, Date.now()));
				}
			},

			/** Notifications and resolved alerts are kept a week, for the record. */
			async prune(this: This, now: number) {
				const before = now - 7 * 86_400_000;
				await this.repos.notifications.removeWhere({ state: { $in: ["sent", "failed", "merged"] }, createdAt: { $lt: before } });
				await this.repos.alerts.removeWhere({ state: "resolved", resolvedAt: { $lt: before } });
				await this.repos.silences.removeWhere({ endsAt: { $lt: before } });
			},

			/**
			 * Whether this replica works the groups and queues now: one at a time across the mesh (a lease in the
			 * store, taken or renewed by one conditional single-document write), so two replicas never send the
			 * same message or break a robot's rate. A replica that stops holding it is replaced within the lease.
			 */
			async lead(this: This, now: number): Promise<boolean> {
				const until = now + Math.max(5000, 3 * ac.tickMs);
				const me = this.broker.nodeID;
				const renewed = await this.repos.robots.updateWhere({ _id: LEASE_ID, $or: [{ holder: me }, { leaseUntil: { $lt: now } }] }, { $set: { holder: me, leaseUntil: until } });
				if (renewed === 1) return true;
				return this.repos.robots.insert({ _id: LEASE_ID, holder: me, leaseUntil: until } as unknown as RobotState).then(
					() => true,
					err => {
						if (Repository.isDuplicateKeyError(err)) return false;
						throw err;
					},
				);
			},

			/** One round, never two at once (the timer and tickNow share it). */
			tick(this: This) {
				this.ticking ??= (async () => {
					const now = Date.now();
					if (!(await this.lead(now))) {
						this.leading = false;
						return;
					}
					if (!this.leading) {
						// Taking over (a start, or another replica gone): digests a crash left half made are made whole first.
						await this.restoreDigests();
						this.leading = true;
					}
					// Windows that emptied: a rate that was firing is judged again without a new attempt.
					for (const key of [...this.rates.keys()]) this.judgeRate(key, now);
					await this.signals;
					await this.evaluate(now);
					await this.notifyGroups(now);
					await this.dispatch(now);
					if (now - (this.prunedAt ?? 0) > 3600_000) {
						this.prunedAt = now;
						await this.prune(now);
					}
				})().finally(() => (this.ticking = undefined));
				return this.ticking;
			},
		},
		created(this: This) {
			this.metrics = meters(this.broker, { fired: BUSINESS_METRICS.alertsFired, sent: BUSINESS_METRICS.alertsSent });
			for (const severity of SEVERITIES) this.metrics.fired.bind({ severity });
			this.points = new Map();
			this.rates = new Map();
			this.signals = Promise.resolve();
		},

		async started(this: This) {
			if (!robots.size) this.logger.warn("No DingTalk robot configured (DINGTALK_WEBHOOK_URL or DINGTALK_ROBOTS): alerts are kept and listed, not sent");
			this.timer = setInterval(() => {
				if (!this.ticking) this.tick().catch(err => this.logger.warn(`Alerts tick failed: ${err.message}`));
			}, ac.tickMs);
		},

		async stopped(this: This) {
			clearInterval(this.timer);
			await this.ticking?.catch(() => undefined);
			// Another replica takes over at once instead of after the lease.
			await this.repos.robots.updateWhere({ _id: LEASE_ID, holder: this.broker.nodeID }, { $set: { leaseUntil: 0 } }).catch(() => undefined);
		},
	};
}
