/**
 * billing: payments, refunds, the ledger, the merchants' money.
 *
 * - A payment is created at checkout for the quoted amount (integer fen) and
 *   captured only on a verified provider notification or on the provider's
 *   own answer to a query (the sweeper asks about payments still pending).
 * - Capturing is one compare-and-set of the payment document (pending →
 *   captured) that also pushes, in the same write, what must follow: the
 *   ledger entries and the order's "paid". A relay delivers those and pulls
 *   them only once done (mixins/outbox.ts): a crash between the capture and
 *   the ledger loses nothing, and ten copies of one notification capture once.
 * - Refunds: another compare-and-set on the payment (never more than captured
 *   minus refunded, one per request id), with the provider refund and the
 *   ledger entries in its outbox.
 * - The ledger is double-entry and append-only (billing/ledger.ts); daily
 *   settlements and the reconciliation are computed from it.
 */
import crypto from "node:crypto";
import type { Context, ServiceSchema, ServiceSettingSchema } from "moleculer";
import { Errors } from "moleculer";
import type { Config } from "../config";
import { createDbMixin, type EntityDefinition } from "../mixins/db.mixin";
import { Repository } from "../mixins/repository";
import { OUTBOX_FIELDS, OutboxRelay, withOutbox, type OutboxFields, type OutboxItem } from "../mixins/outbox";
import type { CreatePaymentParams, PaymentCapturedNotice, PaymentStatus, PaymentView, RefundParams, RefundView } from "../domain/billing";
import type { AppMeta } from "../types/auth";
import { conflict, ErrorTypes, forbidden, invalid, notFound, unauthorized } from "../types/errors";
import { idParam, pageParams, type Page, type PageParams } from "../types/params";
import {
	captureEntries, dayRange, reconcile as reconcileLedger, refundEntries, settle, shanghaiDay,
	type LedgerEntry, type Mismatch, type PaymentFacts, type Settlement,
} from "./billing/ledger";
import { crashPoint } from "../lib/crash-points";
import type { PaymentStaleEvent, ReconciliationCheckedEvent } from "../types/events";
import { BUSINESS_METRICS, labelValue, meters, type Meter } from "../lib/business-metrics";
import { SANDBOX_SIGNATURE_HEADER, SandboxProvider, SandboxTxnEntity, type PaymentProvider, type ProviderNotification, type SandboxTxnDoc } from "./billing/providers";

interface RefundRecord {
	id: string;
	requestId: string;
	amountFen: number;
	reason: string;
	actorId: string;
	at: Date;
}

/** A payment is what checkout asked for, and what became of it. */
export interface PaymentDoc extends OutboxFields, CreatePaymentParams {
	status: PaymentStatus;
	provider: string;
	providerTxnId: string | null;
	refundedFen: number;
	refunds: RefundRecord[];
	createdAt: Date;
	capturedAt: Date | null;
	failedAt: Date | null;
}

interface NotificationDoc {
	_id: string; // sha256 of the raw body: the same notification is recorded once
	paymentId: string;
	outcome: string;
	receivedAt: Date;
}

interface SettlementDoc extends Settlement {
	_id: string;
	createdAt: Date;
}

export const PaymentEntity: EntityDefinition = {
	collection: "payments",
	idPrefix: "pay",
	fields: {
		orderId: "string", userId: "string", merchantId: "string", pointId: "string", amountFen: "number", commissionRate: "number", status: "string",
		provider: "string", providerTxnId: "string", refundedFen: "number", refunds: "array", createdAt: "date", capturedAt: "date", failedAt: "date",
		...OUTBOX_FIELDS,
	},
	indexes: [{ fields: { orderId: 1 } }, { fields: { status: 1, createdAt: 1 } }, { fields: { capturedAt: 1 }, sparse: true }, { fields: { outboxAt: 1 }, sparse: true }],
};

const LedgerEntity: EntityDefinition = {
	collection: "ledger_entries",
	idPrefix: "led",
	fields: {
		txnId: "string", kind: "string", account: "string", debitFen: "number", creditFen: "number", merchantId: "string",
		paymentId: "string", orderId: "string", at: "date", createdAt: "date",
	},
	indexes: [{ fields: { merchantId: 1, at: 1 } }, { fields: { paymentId: 1 } }, { fields: { at: 1 } }],
};

const NotificationEntity: EntityDefinition = {
	collection: "payment_notifications",
	idPrefix: "ntf",
	fields: { paymentId: "string", outcome: "string", receivedAt: "date" },
	indexes: [{ fields: { paymentId: 1 } }],
};

const SettlementEntity: EntityDefinition = {
	collection: "settlements",
	idPrefix: "set",
	fields: { merchantId: "string", date: "string", grossFen: "number", commissionFen: "number", refundsFen: "number", netFen: "number", createdAt: "date" },
	indexes: [{ fields: { merchantId: 1, date: 1 }, unique: true }],
};

interface Settings extends ServiceSettingSchema {
	rest: string;
}

interface Reconciliation {
	date: string;
	payments: number;
	capturedFen: number;
	entries: number;
	mismatches: Mismatch[];
	inFlight: string[];
}

interface Methods {
	view(p: PaymentDoc): PaymentView;
	facts(p: PaymentDoc): PaymentFacts;
	deliver(item: OutboxItem): Promise<unknown>;
	capture(paymentId: string, n: { providerTxnId: string; amountFen: number }, via: string): Promise<"captured" | "already" | "mismatch" | "not pending">;
	failPayment(paymentId: string, why: string): Promise<boolean>;
	sweep(): Promise<void>;
	reconcileDay(date: string): Promise<Reconciliation>;
	onNotification(ctx: Context<unknown, AppMeta>, rawBody: string, headers: Record<string, string>): Promise<{ ok: true; outcome: string }>;
	merchantOnly(ctx: Context<unknown, AppMeta>, merchantId: string): Promise<void>;
	settleDay(merchantId: string, date: string): Promise<Settlement>;
	postEntries(entries: LedgerEntry[]): Promise<void>;
}

interface Vars {
	repos: {
		payments: Repository<PaymentDoc>;
		ledger: Repository<LedgerEntry>;
		notifications: Repository<NotificationDoc>;
		settlements: Repository<SettlementDoc>;
		sandbox: Repository<SandboxTxnDoc>;
	};
	provider: SandboxProvider;
	providers: Map<string, PaymentProvider>;
	relay: OutboxRelay<PaymentDoc>;
	sweepTimer?: NodeJS.Timeout;
	sweeping?: Promise<void>;
	reconcileTimer?: NodeJS.Timeout;
	metrics: Record<"captured" | "capturedFen" | "refunds" | "refundsFen", Meter>;
}

type This = Vars & Methods & { broker: Context["broker"]; logger: any };

const dayParam = { type: "string", pattern: /^\d{4}-\d{2}-\d{2}$/, optional: true } as const;
const { MoleculerClientError } = Errors;

export function createBillingService(config: Config, opts: { dataDir?: string | null } = {}): ServiceSchema<Settings, Methods, Vars> {
	const dataDir = opts.dataDir === undefined ? config.dataDir : opts.dataDir;
	const pay = config.payments;

	return {
		name: "billing",
		mixins: [
			createDbMixin(
				{ payments: PaymentEntity, ledger: LedgerEntity, notifications: NotificationEntity, settlements: SettlementEntity, sandbox: SandboxTxnEntity },
				{ mongoUri: config.mongoUri, dataDir },
			),
		],
		settings: { rest: "" },

		actions: {
			/** Internal (orders' checkout): a pending payment of the amount, or the order's pending one of that amount. */
			createPayment: {
				visibility: "public",
				params: {
					orderId: idParam, userId: idParam, merchantId: idParam, pointId: idParam,
					amountFen: { type: "number", integer: true, min: 1, max: 100_000_000 }, commissionRate: { type: "number", min: 0, max: 1 },
				},
				async handler(this: This, ctx: Context<CreatePaymentParams>): Promise<PaymentView> {
					const p = ctx.params;
					const open = (await this.repos.payments.find({ query: { orderId: p.orderId, status: "pending" } })).find(x => x.amountFen === p.amountFen);
					if (open) return this.view(open);
					const id = this.repos.payments.newId();
					await this.provider.create({ paymentId: id, amountFen: p.amountFen });
					const doc = await this.repos.payments.insert({
						_id: id, orderId: p.orderId, userId: p.userId, merchantId: p.merchantId, pointId: p.pointId, amountFen: p.amountFen,
						commissionRate: p.commissionRate, status: "pending", provider: this.provider.name, providerTxnId: null, refundedFen: 0, refunds: [],
						createdAt: new Date(), capturedAt: null, failedAt: null, outbox: [],
					});
					return this.view(doc);
				},
			},

			notifySandbox: {
				rest: "POST /payments/notify/sandbox",
				auth: "public",
				rawBody: { headers: [SANDBOX_SIGNATURE_HEADER] },
				summary: "The sandbox provider's payment notification (signed: X-Sandbox-Signature = hex HMAC-SHA256 of the raw body)",
				params: {
					paymentId: { type: "string", min: 1, max: 64 }, providerTxnId: { type: "string", min: 1, max: 64 },
					amountFen: { type: "number", integer: true, min: 0, max: 100_000_000 }, status: { type: "enum", values: ["success", "fail"] },
				},
				async handler(this: This, ctx: Context<ProviderNotification, AppMeta>) {
					return this.onNotification(ctx, ctx.meta.rawBody ?? "", ctx.meta.headers ?? {});
				},
			},

			/**
			 * The sandbox's "pay" button: what the person does in the provider's app. The provider
			 * then notifies the platform (unless `notify` is false: a notification that never comes,
			 * left to the sweeper).
			 */
			sandboxPay: {
				rest: "POST /payments/:id/sandbox-pay",
				auth: ["user"],
				summary: "Sandbox only: pay a pending payment as its provider would see it",
				params: { id: idParam, notify: { type: "boolean", optional: true, default: true } },
				async handler(this: This, ctx: Context<{ id: string; notify: boolean }, AppMeta>) {
					const payment = await this.repos.payments.findById(ctx.params.id);
					if (!payment || payment.userId !== ctx.meta.user?.id) throw notFound("Payment", { id: ctx.params.id });
					if (payment.provider !== "sandbox") throw conflict("Not a sandbox payment", "NOT_SANDBOX");
					const n = await this.provider.pay(payment._id);
					if (!n) throw conflict(`Payment ${payment._id} cannot be paid (${payment.status})`, "PAYMENT_NOT_PENDING");
					if (!ctx.params.notify) return { ok: true, notified: false };
					const r = await this.onNotification(ctx, n.rawBody, n.headers);
					return { ok: true, notified: true, outcome: r.outcome };
				},
			},

			getPayment: {
				rest: "GET /payments/:id",
				auth: ["user", "operator", "admin"],
				summary: "A payment (its payer, or staff)",
				params: { id: idParam },
				async handler(this: This, ctx: Context<{ id: string }, AppMeta>): Promise<PaymentView> {
					const p = await this.repos.payments.findById(ctx.params.id);
					const u = ctx.meta.user;
					if (!p || (u && p.userId !== u.id && !u.roles.some(r => r === "admin" || r === "operator"))) throw notFound("Payment", { id: ctx.params.id });
					return this.view(p);
				},
			},

			/** Internal (orders' refund route): one refund per request id, never beyond what was captured. */
			refund: {
				visibility: "public",
				params: {
					orderId: idParam, paymentId: idParam, amountFen: { type: "number", integer: true, min: 1, max: 100_000_000, optional: true },
					reason: { type: "string", min: 3, max: 200 }, actorId: { type: "string", max: 64 }, requestId: { type: "string", min: 1, max: 300 },
				},
				async handler(this: This, ctx: Context<RefundParams>): Promise<RefundView> {
					const p = ctx.params;
					const refundId = `ref_${crypto.createHash("sha256").update(`${p.paymentId}\n${p.requestId}`).digest("base64url").slice(0, 22)}`;
					for (let attempt = 0; attempt < 5; attempt++) {
						const payment = await this.repos.payments.findById(p.paymentId);
						if (!payment || payment.orderId !== p.orderId) throw notFound("Payment", { id: p.paymentId });
						const done = payment.refunds.find(r => r.id === refundId);
						if (done) return refundView(payment, done);
						if (payment.status !== "captured") throw conflict(`Payment ${payment._id} is ${payment.status}; only a captured payment is refunded`, "NOTHING_TO_REFUND");
						const left = payment.amountFen - payment.refundedFen;
						const amount = p.amountFen ?? left;
						if (amount <= 0 || amount > left) {
							throw new MoleculerClientError(`At most ${left} fen can still be refunded`, 422, "REFUND_TOO_LARGE", { refundableFen: left, requestedFen: amount });
						}
						const record: RefundRecord = { id: refundId, requestId: p.requestId, amountFen: amount, reason: p.reason, actorId: p.actorId, at: new Date() };
						const moved = await this.repos.payments.updateWhere(
							{ _id: payment._id, status: "captured", refundedFen: payment.refundedFen },
							withOutbox({ $inc: { refundedFen: amount }, $push: { refunds: record } }, [
								{ id: `${refundId}:provider`, action: "$provider.refund", params: { paymentId: payment._id, refundId, amountFen: amount }, at: Date.now() },
								{ id: `${refundId}:ledger`, action: "$ledger.refund", params: { paymentId: payment._id, refundId, amountFen: amount, at: record.at.getTime() }, at: Date.now() },
							]),
						);
						if (moved === 1) {
							const provider = labelValue(payment.provider);
							this.metrics.refunds.inc({ provider });
							this.metrics.refundsFen.inc({ provider }, amount);
							this.logger.info(`Refund ${refundId} of ${amount} fen on payment ${payment._id} (${p.reason}) by ${p.actorId}`);
							this.broker.emit("billing.refund.requested", { refundId, paymentId: payment._id, orderId: payment.orderId, amountFen: amount });
							void this.relay.relayById(payment._id);
							return refundView({ ...payment, outbox: [{ id: `${refundId}:provider` } as OutboxItem] }, record);
						}
						// Another refund of this payment landed meanwhile: look again.
					}
					throw conflict("The payment is being refunded by another request; retry", "PAYMENT_BUSY");
				},
			},

			ledger: {
				rest: "GET /merchants/:id/ledger",
				auth: ["admin", "merchant"],
				summary: "A merchant's ledger entries (its payable account and the platform's commission on it), oldest first",
				params: { id: idParam, from: { type: "date", convert: true, optional: true }, to: { type: "date", convert: true, optional: true }, ...pageParams },
				async handler(this: This, ctx: Context<{ id: string; from?: Date; to?: Date } & PageParams, AppMeta>): Promise<Page<LedgerEntry>> {
					await this.merchantOnly(ctx, ctx.params.id);
					const at: Record<string, Date> = {};
					if (ctx.params.from) at.$gte = ctx.params.from;
					if (ctx.params.to) at.$lt = ctx.params.to;
					const query: Record<string, unknown> = { merchantId: ctx.params.id, ...(Object.keys(at).length ? { at } : {}) };
					const { page, pageSize } = ctx.params;
					const [rows, total] = await Promise.all([
						this.repos.ledger.find({ query, sort: ["at", "_id"] as unknown as string, limit: pageSize, offset: (page - 1) * pageSize }),
						this.repos.ledger.count(query),
					]);
					return { rows, total, page, pageSize };
				},
			},

			settlements: {
				rest: "GET /merchants/:id/settlements",
				auth: ["admin", "merchant"],
				summary: "A merchant's daily statements (Asia/Shanghai days): gross, commission, refunds, net, in fen",
				params: { id: idParam, from: dayParam, to: dayParam },
				async handler(this: This, ctx: Context<{ id: string; from?: string; to?: string }, AppMeta>) {
					await this.merchantOnly(ctx, ctx.params.id);
					const today = shanghaiDay(new Date());
					const to = ctx.params.to ?? today;
					const from = ctx.params.from ?? shanghaiDay(new Date(dayRange(to).from.getTime() - 29 * 86_400_000));
					if (from > to) throw invalid([{ field: "from", message: "from must not be after to" }]);
					const days: string[] = [];
					for (let d = dayRange(from).from; shanghaiDay(d) <= to && days.length < 92; d = new Date(d.getTime() + 86_400_000)) days.push(shanghaiDay(d));
					const rows = [];
					for (const day of days) rows.push(await this.settleDay(ctx.params.id, day));
					return { rows };
				},
			},

			reconciliation: {
				rest: "GET /admin/reconciliation",
				auth: ["admin"],
				summary: "Payments against the ledger for a day (Asia/Shanghai): any payment without entries, entry without payment, amount mismatch",
				params: { date: { ...dayParam, optional: true } },
				async handler(this: This, ctx: Context<{ date?: string }>) {
					return this.reconcileDay(ctx.params.date ?? shanghaiDay(new Date()));
				},
			},

			/** Internal (REPL, tests): look for pending payments whose notification never came, now. */
			sweepPending: {
				visibility: "public",
				async handler(this: This) {
					await this.sweep();
					await this.relay.sweep();
					return { ok: true };
				},
			},
		},

		methods: {
			view(p: PaymentDoc): PaymentView {
				return {
					id: p._id, orderId: p.orderId, amountFen: p.amountFen, status: p.status, provider: p.provider, refundedFen: p.refundedFen,
					createdAt: new Date(p.createdAt).toISOString(), capturedAt: p.capturedAt ? new Date(p.capturedAt).toISOString() : null,
				};
			},

			facts(p: PaymentDoc): PaymentFacts {
				return { paymentId: p._id, orderId: p.orderId, merchantId: p.merchantId, amountFen: p.amountFen, commissionRate: p.commissionRate };
			},

			/** An outbox item: `$…` items are billing's own steps; the rest are calls to other services. */
			async deliver(this: This, item: OutboxItem) {
				const params = item.params as Record<string, any>;
				switch (item.action) {
					case "$ledger.capture": {
						const p = await this.repos.payments.findById(params.paymentId);
						if (p) await this.postEntries(captureEntries(this.facts(p), new Date(params.at)));
						return;
					}
					case "$ledger.refund": {
						const p = await this.repos.payments.findById(params.paymentId);
						if (p) await this.postEntries(refundEntries(this.facts(p), params.refundId, params.amountFen, new Date(params.at)));
						return;
					}
					case "$provider.refund": {
						const p = await this.repos.payments.findById(params.paymentId);
						if (p) await (this.providers.get(p.provider) ?? this.provider).refund({ paymentId: p._id, refundId: params.refundId, amountFen: params.amountFen });
						return;
					}
					default:
						return this.broker.call(item.action, item.params, { timeout: 5000 });
				}
			},

			/** Ledger entries are inserted once: their ids come from what caused them. */
			async postEntries(this: This, entries: LedgerEntry[]) {
				for (const e of entries) {
					await this.repos.ledger.insert(e).catch(err => {
						if (!Repository.isDuplicateKeyError(err)) throw err;
					});
				}
			},

			/**
			 * pending → captured, with the ledger and the order's "paid" in the same write. A repeat
			 * (the same notification again, or the sweeper after it) changes nothing.
			 */
			async capture(this: This, paymentId: string, n: { providerTxnId: string; amountFen: number }, via: string) {
				const p = await this.repos.payments.findById(paymentId);
				if (!p) return "not pending";
				if (p.status === "captured") return "already";
				if (p.status !== "pending") return "not pending";
				if (n.amountFen !== p.amountFen) {
					this.logger.warn(`Payment ${p._id}: ${via} says ${n.amountFen} fen, the payment is ${p.amountFen} fen: refused`);
					this.broker.emit("billing.payment.amountMismatch", { paymentId: p._id, orderId: p.orderId, expectedFen: p.amountFen, notifiedFen: n.amountFen, via });
					return "mismatch";
				}
				const at = Date.now();
				const notice: PaymentCapturedNotice = { id: `${p._id}:paid`, orderId: p.orderId, paymentId: p._id, amountFen: p.amountFen, capturedAt: at };
				const moved = await this.repos.payments.updateWhere(
					{ _id: p._id, status: "pending" },
					withOutbox({ $set: { status: "captured", capturedAt: new Date(at), providerTxnId: n.providerTxnId } }, [
						{ id: `${p._id}:ledger`, action: "$ledger.capture", params: { paymentId: p._id, at }, at },
						{ id: `${p._id}:paid`, action: "orders.markPaid", params: { ...notice }, at },
					]),
				);
				if (moved !== 1) return "already";
				crashPoint(config.crashPoints, "billing.captured"); // captured, the ledger not written yet
				const provider = labelValue(p.provider);
				this.metrics.captured.inc({ provider });
				this.metrics.capturedFen.inc({ provider }, p.amountFen);
				this.logger.info(`Payment ${p._id} captured: ${p.amountFen} fen for order ${p.orderId} (${via})`);
				this.broker.emit("billing.payment.captured", { paymentId: p._id, orderId: p.orderId, merchantId: p.merchantId, amountFen: p.amountFen });
				void this.relay.relayById(p._id);
				return "captured";
			},

			async failPayment(this: This, paymentId: string, why: string) {
				const moved = await this.repos.payments.updateWhere({ _id: paymentId, status: "pending" }, { $set: { status: "failed", failedAt: new Date() } });
				if (moved === 1) this.logger.info(`Payment ${paymentId} failed: ${why}`);
				return moved === 1;
			},

			async onNotification(this: This, _ctx: Context<unknown, AppMeta>, rawBody: string, headers: Record<string, string>) {
				const n = this.provider.verify(rawBody, headers);
				if (!n) {
					this.broker.emit("billing.notification.rejected", { provider: this.provider.name, reason: "signature" });
					throw unauthorized("Notification signature does not verify", ErrorTypes.INVALID_SIGNATURE);
				}
				const digest = crypto.createHash("sha256").update(rawBody).digest("hex");
				let outcome: string;
				if (n.status === "fail") outcome = (await this.failPayment(n.paymentId, "the provider says it failed")) ? "failed" : "unchanged";
				else outcome = await this.capture(n.paymentId, n, "notification");
				await this.repos.notifications.insert({ _id: digest, paymentId: n.paymentId, outcome, receivedAt: new Date() }).catch(err => {
					if (!Repository.isDuplicateKeyError(err)) throw err; // the same notification again: recorded once
				});
				if (outcome === "mismatch") {
					throw new MoleculerClientError("The notified amount differs from the payment", 422, "AMOUNT_MISMATCH", { paymentId: n.paymentId });
				}
				// Answered so the provider stops retrying (also for a repeat or an unknown payment).
				return { ok: true as const, outcome };
			},

			/** A day's payments against the ledger; operators are told of any mismatch (alerts). */
			async reconcileDay(this: This, date: string): Promise<Reconciliation> {
				const { from, to } = dayRange(date);
				const [captured, dayEntries] = await Promise.all([
					this.repos.payments.find({ query: { capturedAt: { $gte: from, $lt: to } } }),
					this.repos.ledger.find({ query: { at: { $gte: from, $lt: to } } }),
				]);
				const ids = new Set([...captured.map(p => p._id), ...dayEntries.map(e => e.paymentId)]);
				const payments = (await Promise.all([...ids].map(id => this.repos.payments.findById(id)))).filter((p): p is PaymentDoc => !!p);
				const entries = (await Promise.all(payments.map(p => this.repos.ledger.find({ query: { paymentId: p._id } })))).flat();
				const orphans = dayEntries.filter(e => !payments.some(p => p._id === e.paymentId));
				// Money still on its way (the outbox has not posted it yet) is not a mismatch, but it is said.
				const inFlight = payments.filter(p => p.outbox?.length).map(p => p._id);
				const mismatches: Mismatch[] = reconcileLedger(payments, [...entries, ...orphans]).filter(m => !inFlight.includes(m.paymentId));
				this.broker.emit("billing.reconciliation.checked", { date, mismatches: mismatches.length } satisfies ReconciliationCheckedEvent);
				return {
					date, payments: captured.length, capturedFen: captured.reduce((n, p) => n + p.amountFen, 0),
					entries: dayEntries.length, mismatches, inFlight,
				};
			},

			/** Payments still pending after a while: ask the provider (a notification may never come). */
			async sweep(this: This) {
				const before = new Date(Date.now() - pay.queryAfterMs);
				const pending = await this.repos.payments.find({ query: { status: "pending", createdAt: { $lt: before } }, sort: "createdAt", limit: 100 });
				for (const p of pending) {
					const q = await (this.providers.get(p.provider) ?? this.provider).query(p._id).catch(() => ({ status: "unknown" as const }));
					if (q.status === "success") await this.capture(p._id, { providerTxnId: q.providerTxnId ?? "", amountFen: q.amountFen ?? p.amountFen }, "provider query");
					else if (q.status === "failed") await this.failPayment(p._id, "the provider says it failed");
					else if (Date.now() - new Date(p.createdAt).getTime() > pay.expireAfterMs) await this.failPayment(p._id, "never paid");
					else {
						const ageMs = Date.now() - new Date(p.createdAt).getTime();
						if (ageMs > config.alerts.thresholds.paymentPendingMs) this.broker.emit("billing.payment.stale", { paymentId: p._id, orderId: p.orderId, ageMs } satisfies PaymentStaleEvent);
					}
				}
			},

			/** A merchant's money: its own staff and admins only, and only for a merchant that exists. */
			async merchantOnly(ctx: Context<unknown, AppMeta>, merchantId: string) {
				const u = ctx.meta.user;
				if (u && !u.roles.includes("admin") && !(u.roles.includes("merchant") && u.merchantId === merchantId)) {
					throw forbidden("Only this merchant's staff and admins see its money");
				}
				if (!(await ctx.call<boolean, { id: string }>("merchants.merchantExists", { id: merchantId }))) throw notFound("Merchant", { id: merchantId });
			},

			/** A day's statement; days that are over are stored once and answered from the store after. */
			async settleDay(this: This, merchantId: string, date: string): Promise<Settlement> {
				const id = `set_${merchantId}_${date}`;
				const stored = await this.repos.settlements.findById(id);
				if (stored) {
					const { _id: _i, createdAt: _c, ...s } = stored;
					return s;
				}
				const { from, to } = dayRange(date);
				const entries = await this.repos.ledger.find({ query: { merchantId, at: { $gte: from, $lt: to } } });
				const s = settle(merchantId, date, entries);
				// A day is settled once it is over and nothing of it is still on its way to the ledger.
				const over = to.getTime() + pay.settleDelayMs < Date.now();
				const inFlight = await this.repos.payments.count({ merchantId, outboxAt: { $exists: true } });
				if (over && inFlight === 0) {
					await this.repos.settlements.insert({ _id: id, ...s, createdAt: new Date() }).catch(err => {
						if (!Repository.isDuplicateKeyError(err)) throw err;
					});
				}
				return s;
			},
		},

		created(this: This) {
			this.provider = new SandboxProvider(config.sandboxPaySecret, this.repos.sandbox);
			this.providers = new Map([[this.provider.name, this.provider]]);
			this.metrics = meters(this.broker, {
				captured: BUSINESS_METRICS.paymentsCaptured, capturedFen: BUSINESS_METRICS.paymentsCapturedFen, refunds: BUSINESS_METRICS.refunds, refundsFen: BUSINESS_METRICS.refundsFen,
			});
			for (const provider of this.providers.keys()) for (const m of Object.values(this.metrics)) m.bind({ provider });
			this.relay = new OutboxRelay({ repo: this.repos.payments, deliver: item => this.deliver(item), sweepEveryMs: 2000, logger: this.logger });
		},

		started(this: This) {
			// Whatever a crash left in an outbox is delivered now, then every few seconds.
			this.relay.start();
			this.sweepTimer = setInterval(() => {
				if (this.sweeping) return;
				this.sweeping = this.sweep()
					.catch(err => this.logger.warn(`Payment sweep failed: ${err.message}`))
					.finally(() => (this.sweeping = undefined));
			}, pay.sweepEveryMs);
			// Today's and yesterday's money against the ledger now and then: a mismatch is an alert.
			this.reconcileTimer = setInterval(() => {
				const today = shanghaiDay(new Date());
				const yesterday = shanghaiDay(new Date(Date.now() - 86_400_000));
				void this.reconcileDay(yesterday)
					.then(() => this.reconcileDay(today))
					.catch(err => this.logger.warn(`Reconciliation failed: ${err.message}`));
			}, config.alerts.thresholds.reconcileEveryMs);
		},

		async stopped(this: This) {
			clearInterval(this.sweepTimer);
			clearInterval(this.reconcileTimer);
			await this.sweeping;
			await this.relay.stop();
		},
	};
}

function refundView(p: Pick<PaymentDoc, "_id" | "orderId" | "outbox">, r: RefundRecord): RefundView {
	const pending = (p.outbox ?? []).some(i => i.id === `${r.id}:provider`);
	return { id: r.id, paymentId: p._id, orderId: p.orderId, amountFen: r.amountFen, reason: r.reason, status: pending ? "requested" : "done", createdAt: new Date(r.at).toISOString() };
}
