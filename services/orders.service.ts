/**
 * orders: a person stores a bag (API.md "Storing a bag").
 *
 * - Every change is a compare-and-set on the order's version (order-machine.ts
 *   says which changes are allowed), so two requests can never both move one
 *   order, and a refused change writes nothing.
 * - The door is reserved through its door actor before the order is written
 *   (no order without a door); opens go through the door actor and answer
 *   after the cabinet acked.
 * - The door's news (bag in, bag out, door closed, reservation expired) comes
 *   from the door actors by acknowledged delivery (`applyDoorEvent`, called
 *   until it answers); on start, every order that depends on its door is
 *   checked against the door's live state, so news lost while this service was
 *   down is caught up.
 * - Payment: checkout asks billing for a payment of the quoted amount; billing
 *   tells `markPaid` once captured (acknowledged delivery from its outbox).
 */
import type { Context, ServiceSchema, ServiceSettingSchema } from "moleculer";
import type { Config } from "../config";
import { createDbMixin, type EntityDefinition } from "../mixins/db.mixin";
import type { Repository } from "../mixins/repository";
import { IdempotencyKeys, idempotencyEntity, type IdempotencyDoc } from "../mixins/idempotency";
import { callDoors } from "../lib/door-client";
import { crashPoint } from "../lib/crash-points";
import { SIZES, type PointForOrder, type Size } from "../domain/catalog";
import type { DoorView, OrderDoorEvent } from "../domain/doors";
import type { CreatePaymentParams, PaymentCapturedNotice, PaymentView, RefundParams, RefundView } from "../domain/billing";
import { priceFen } from "../domain/pricing";
import { idParam, pageParams, type Page, type PageParams } from "../types/params";
import type { AppMeta, AuthUser } from "../types/auth";
import { created } from "../lib/created";
import { conflict, forbidden, notFound } from "../types/errors";
import { Errors } from "moleculer";
import type { OrderChangedEvent, OrderStuckEvent, RefundProposedEvent } from "../types/events";
import {
	cancel, checkout, depositOpened, DOOR_DEPENDENT, onDoor, ORDER_STATUSES, paid, pickupOpened, reconcile,
	type Change, type DoorSignal, type OrderDoc, type OrderStatus,
} from "./orders/order-machine";
import { countOpenOrders, OPEN_STATUSES, watchStatusWrites } from "./orders/status-metrics";
import { BUSINESS_METRICS, meter } from "../lib/business-metrics";
import { waitForServicesWhileRunning } from "../lib/wait-for-services";

export const OrderEntity: EntityDefinition = {
	collection: "orders",
	idPrefix: "ord",
	fields: {
		userId: "string", pointId: "string", merchantId: "string", cabinetId: "string", doorId: "string", doorNo: "number", size: "string",
		status: "string", version: "number", pricing: "object", commissionRate: "number", reservedUntil: "date", storedFrom: "date",
		paymentId: "string", amountFen: "number", paidAt: "date", completedAt: "date", endedAt: "date", doorVersion: "number",
		doorEvents: "array", anomalies: "array", refundProposed: "object", createdAt: "date", updatedAt: "date",
	},
	// No index on a few-valued field alone (status): NeDB keeps one list per value and removes from it
	// by scanning on every update, which made each order write slower the more orders there were.
	indexes: [{ fields: { userId: 1, createdAt: -1 } }, { fields: { merchantId: 1, createdAt: -1 } }, { fields: { status: 1, updatedAt: 1 } }],
};

/** An order as API.md shows it. */
export interface OrderView {
	id: string;
	userId: string;
	pointId: string;
	cabinetId: string;
	doorId: string;
	doorNo: number;
	size: string;
	status: OrderStatus;
	reservedUntil: string;
	storedFrom: string | null;
	paymentId: string | null;
	amountFen: number | null;
	paidAt: string | null;
	completedAt: string | null;
	anomalies: string[];
	/** The platform is at fault (the pickup door would not open): a refund waits for an operator's confirmation. */
	refundProposed: { reason: string; at: string } | null;
	createdAt: string;
	updatedAt: string;
}

type Doc = OrderDoc & { doorEvents?: string[]; refundProposed?: { reason: string; at: Date } | null };

const iso = (d: Date | null | undefined) => (d ? new Date(d).toISOString() : null);

export function toOrderView(o: Doc): OrderView {
	return {
		id: o._id, userId: o.userId, pointId: o.pointId, cabinetId: o.cabinetId, doorId: o.doorId, doorNo: o.doorNo, size: o.size, status: o.status,
		reservedUntil: new Date(o.reservedUntil).toISOString(), storedFrom: iso(o.storedFrom), paymentId: o.paymentId, amountFen: o.amountFen,
		paidAt: iso(o.paidAt), completedAt: iso(o.completedAt), anomalies: o.anomalies ?? [],
		refundProposed: o.refundProposed ? { reason: o.refundProposed.reason, at: new Date(o.refundProposed.at).toISOString() } : null,
		createdAt: new Date(o.createdAt).toISOString(),
		updatedAt: new Date(o.updatedAt).toISOString(),
	};
}

interface Settings extends ServiceSettingSchema {
	rest: string;
}

interface Methods {
	load(ctx: Context<unknown, AppMeta>, id: string, who: "owner" | "reader"): Promise<Doc>;
	move(order: Doc, change: Change | { ok: true; set: Partial<OrderDoc> }, extra?: Record<string, unknown>): Promise<Doc>;
	write(order: Doc, set: Partial<Doc>, more?: Record<string, unknown>): Promise<Doc | null>;
	announce(order: Doc): void;
	applySignal(orderId: string, signal: DoorSignal, eventId: string, doorVersion: number): Promise<void>;
	catchUp(): Promise<number>;
	reportStuck(): Promise<void>;
	proposeRefund(order: Doc, reason: string): Promise<void>;
	checkWithDoor(order: Doc): Promise<void>;
	countOrders(): Promise<void>;
}

interface Vars {
	repos: { orders: Repository<Doc>; keys: Repository<IdempotencyDoc> };
	idempotency: IdempotencyKeys;
	catchUpTimer?: NodeJS.Timeout;
	countTimer?: NodeJS.Timeout;
	counting?: Promise<void>;
}

type This = Vars & Methods & { broker: Context["broker"]; logger: any };

const STAFF = ["admin", "operator"] as const;
const { MoleculerClientError } = Errors;

/** Orders whose door events may have been missed are checked against their door this often. */
const CATCH_UP_EVERY_MS = 60_000;
/** Door-dependent orders left untouched this long are checked again by the periodic catch-up. */
const STALE_AFTER_MS = 120_000;
/** The orders-by-status gauge is counted this often (never per scrape). */
const COUNT_EVERY_MS = 30_000;

export function createOrdersService(config: Config, opts: { dataDir?: string | null } = {}): ServiceSchema<Settings, Methods, Vars> {
	const dataDir = opts.dataDir === undefined ? config.dataDir : opts.dataDir;
	const doorCall = { timeout: config.doors.callTimeoutMs };

	return {
		name: "orders",
		mixins: [createDbMixin({ orders: OrderEntity, keys: idempotencyEntity("order_idempotency_keys") }, { mongoUri: config.mongoUri, dataDir })],
		settings: { rest: "" },

		actions: {
			create: {
				rest: "POST /orders",
				auth: ["user"],
				idempotent: true,
				summary: "Reserve a free door of the size at the point (201, status reserved)",
				params: { pointId: idParam, size: { type: "enum", values: [...SIZES] } },
				async handler(this: This, ctx: Context<{ pointId: string; size: Size }, AppMeta>): Promise<OrderView> {
					return this.idempotency.run(ctx, "orders.create", ctx.params, async () => {
						const point = await ctx.call<PointForOrder, { pointId: string }>("merchants.pointForOrder", { pointId: ctx.params.pointId });
						if (point.status !== "active") throw conflict("This storage point is not taking bags now", "POINT_NOT_ACTIVE", { pointId: point.id });
						const orderId = this.repos.orders.newId();
						const ttlSec = config.reservationTtlSec;
						// Cabinets with a door of the size, in a random order weighted by how many such doors
						// each has: people arriving together spread over the cabinets instead of queuing at one.
						const candidates = point.cabinets
							.map(c => ({ id: c.id, n: c.doors.filter(d => d.size === ctx.params.size && !d.disabled).length }))
							.filter(c => c.n > 0)
							.map(c => ({ ...c, key: Math.random() ** (1 / c.n) }))
							.sort((a, b) => b.key - a.key);
						let door: DoorView | null = null;
						for (const c of candidates) {
							door = await callDoors<DoorView | null>(ctx, this.broker, "reserveAny", { cabinetId: c.id, size: ctx.params.size, orderId, ttlSec }, c.id, doorCall).catch(err => {
								// One cabinet offline or busy must not stop the point: try its next cabinet.
								if (err?.code >= 500 || err?.code === 429) return null;
								throw err;
							});
							if (door) break;
						}
						if (!door) throw conflict(`No ${ctx.params.size} door free at this point`, "NO_DOOR_AVAILABLE", { pointId: point.id, size: ctx.params.size });
						const now = new Date();
						try {
							const order = await this.repos.orders.insert({
								_id: orderId, userId: ctx.meta.user!.id, pointId: point.id, merchantId: point.merchantId, cabinetId: door.id.slice(0, door.id.lastIndexOf(":")),
								doorId: door.id, doorNo: door.no, size: ctx.params.size, status: "reserved", version: 1, pricing: point.pricing[ctx.params.size],
								commissionRate: point.commissionRate, reservedUntil: door.reservedUntil ? new Date(door.reservedUntil) : new Date(now.getTime() + ttlSec * 1000),
								storedFrom: null, paymentId: null, amountFen: null, paidAt: null, completedAt: null, endedAt: null, doorVersion: door.version,
								doorEvents: [], anomalies: [], refundProposed: null, createdAt: now, updatedAt: now,
							});
							this.announce(order);
							created(ctx, `/orders/${order._id}`);
							return toOrderView(order);
						} catch (err) {
							// No order without a door, and no door held for an order that was never written.
							await callDoors(ctx, this.broker, "release", { doorId: door.id, orderId }, door.id.slice(0, door.id.lastIndexOf(":")), doorCall).catch(() => undefined);
							throw err;
						}
					});
				},
			},

			get: {
				rest: "GET /orders/:id",
				auth: ["user", "merchant", "operator", "admin"],
				summary: "An order (its owner; staff; a merchant for its points)",
				params: { id: idParam },
				async handler(this: This, ctx: Context<{ id: string }, AppMeta>): Promise<OrderView> {
					return toOrderView(await this.load(ctx, ctx.params.id, "reader"));
				},
			},

			list: {
				rest: "GET /orders",
				auth: ["user", "merchant", "operator", "admin"],
				summary: "Orders, newest first: a user's own, a merchant's points', all for staff",
				params: { status: { type: "enum", values: ["reserved", "depositing", "stored", "paying", "paid", "picking_up", "completed", "cancelled", "expired"], optional: true }, ...pageParams },
				async handler(this: This, ctx: Context<PageParams & { status?: OrderStatus }, AppMeta>): Promise<Page<OrderView>> {
					const user = ctx.meta.user!;
					const query: Record<string, unknown> = {};
					if (user.roles.includes("admin") || user.roles.includes("operator")) {
						/* every order */
					} else if (user.roles.includes("merchant")) query.merchantId = user.merchantId ?? "-";
					else query.userId = user.id;
					if (ctx.params.status) query.status = ctx.params.status;
					const { page, pageSize } = ctx.params;
					const [rows, total] = await Promise.all([
						this.repos.orders.find({ query, sort: "-createdAt", limit: pageSize, offset: (page - 1) * pageSize }),
						this.repos.orders.count(query),
					]);
					return { rows: rows.map(toOrderView), total, page, pageSize };
				},
			},

			open: {
				rest: "POST /orders/:id/open",
				auth: ["user"],
				summary: "Open the order's door: for the deposit while reserved, for the pickup once paid (answers after the cabinet acked)",
				timeout: config.doors.callTimeoutMs + 2000,
				params: { id: idParam },
				async handler(this: This, ctx: Context<{ id: string }, AppMeta>): Promise<OrderView> {
					const order = await this.load(ctx, ctx.params.id, "owner");
					const purpose = order.status === "reserved" || order.status === "depositing" ? "deposit" : order.status === "paid" || order.status === "picking_up" ? "pickup" : null;
					if (!purpose) {
						throw conflict(`Order ${order._id} is ${order.status}: the door opens for a deposit while reserved, for a pickup once paid`, "INVALID_ORDER_STATE", { status: order.status });
					}
					await callDoors(ctx, this.broker, "open", { doorId: order.doorId, orderId: order._id, purpose }, order.cabinetId, doorCall).catch(async err => {
						// The bag is paid for and the door will not give it back: the platform is at fault. A refund
						// is proposed at once; an operator confirms it (POST /orders/:id/refund) once the bag is out.
						if (purpose === "pickup" && err?.type === "DOOR_FAULT") await this.proposeRefund(order, `pickup door fault: ${err.data?.error ?? err.message}`);
						throw err;
					});
					// The cabinet acked: the door is open. Its close may already have moved the order on (the
					// door's news can overtake this answer): then the order is answered as it is now.
					for (let attempt = 0; ; attempt++) {
						const now = (await this.repos.orders.findById(order._id))!;
						const change = purpose === "deposit" ? depositOpened(now) : pickupOpened(now);
						if (!change.ok || !Object.keys(change.set).length || attempt === 5) return toOrderView(now);
						const moved = await this.write(now, change.set);
						if (moved) return toOrderView(moved);
					}
				},
			},

			quote: {
				rest: "GET /orders/:id/quote",
				auth: ["user", "operator", "admin"],
				summary: "What checkout would charge now",
				params: { id: idParam },
				async handler(this: This, ctx: Context<{ id: string }, AppMeta>) {
					const order = await this.load(ctx, ctx.params.id, "reader");
					if (!order.storedFrom) throw conflict(`Order ${order._id} has no bag stored yet`, "INVALID_ORDER_STATE", { status: order.status });
					const until = order.paidAt && order.amountFen !== null && order.status !== "paying" ? new Date(order.paidAt) : new Date();
					return { amountFen: priceFen(order.pricing, new Date(order.storedFrom).getTime(), until.getTime()), storedFrom: iso(order.storedFrom), until: until.toISOString() };
				},
			},

			checkout: {
				rest: "POST /orders/:id/checkout",
				auth: ["user"],
				idempotent: true,
				summary: "Pay for the storage so far: a pending payment (order paying), or straight to paid when it is free",
				params: { id: idParam },
				async handler(this: This, ctx: Context<{ id: string }, AppMeta>) {
					return this.idempotency.run(ctx, "orders.checkout", ctx.params, async () => {
						const order = await this.load(ctx, ctx.params.id, "owner");
						if (order.status !== "stored" && order.status !== "paying") {
							throw conflict(`Order ${order._id} is ${order.status}; checkout is for a stored bag`, "INVALID_ORDER_STATE", { status: order.status });
						}
						const now = new Date();
						const amountFen = priceFen(order.pricing, new Date(order.storedFrom!).getTime(), now.getTime());
						if (amountFen === 0) {
							await this.move(order, checkout(order, null, 0, now));
							return { payment: null, order: toOrderView((await this.repos.orders.findById(order._id))!) };
						}
						const payment = await ctx.call<PaymentView, CreatePaymentParams>("billing.createPayment", {
							orderId: order._id, userId: order.userId, merchantId: order.merchantId, pointId: order.pointId, amountFen, commissionRate: order.commissionRate,
						});
						const moved = await this.move(order, checkout(order, payment.id, payment.amountFen, now));
						return { payment, order: toOrderView(moved) };
					});
				},
			},

			cancel: {
				rest: "POST /orders/:id/cancel",
				auth: ["user"],
				summary: "Cancel a reservation (before the bag is in); frees the door",
				params: { id: idParam },
				async handler(this: This, ctx: Context<{ id: string }, AppMeta>): Promise<OrderView> {
					const order = await this.load(ctx, ctx.params.id, "owner");
					const change = cancel(order, new Date());
					if (!change.ok) throw new MoleculerClientError(change.message, change.status, change.type, { status: order.status });
					if (order.status === "cancelled") return toOrderView(order);
					// The door first: if it cannot be freed (the door is open right now), the order stays as it is.
					await callDoors(ctx, this.broker, "release", { doorId: order.doorId, orderId: order._id }, order.cabinetId, doorCall);
					return toOrderView(await this.move(order, change));
				},
			},

			refund: {
				rest: "POST /orders/:id/refund",
				auth: [...STAFF],
				idempotent: true,
				summary: "Refund all or part of what was paid (staff), with a reason",
				params: { id: idParam, amountFen: { type: "number", integer: true, min: 1, max: 100_000_000, optional: true }, reason: { type: "string", min: 3, max: 200, trim: true } },
				async handler(this: This, ctx: Context<{ id: string; amountFen?: number; reason: string }, AppMeta>): Promise<RefundView> {
					return this.idempotency.run(ctx, "orders.refund", ctx.params, async () => {
						const order = await this.load(ctx, ctx.params.id, "reader");
						if (!order.paymentId) throw conflict(`Order ${order._id} has no captured payment`, "NOTHING_TO_REFUND", { status: order.status });
						// The refund shows on its payment.
						created(ctx, `/payments/${order.paymentId}`);
						const refund = await ctx.call<RefundView, RefundParams>("billing.refund", {
							orderId: order._id, paymentId: order.paymentId, amountFen: ctx.params.amountFen, reason: ctx.params.reason, actorId: ctx.meta.user!.id,
							requestId: ctx.meta.idempotencyKey ?? ctx.requestID ?? `${Date.now()}`,
						});
						// A proposed refund is confirmed by this one.
						if (order.refundProposed) await this.repos.orders.updateWhere({ _id: order._id }, { $set: { refundProposed: null, updatedAt: new Date() } });
						return refund;
					});
				},
			},

			/** Internal: a door event of an order, from the door actors (acknowledged by answering). */
			applyDoorEvent: {
				visibility: "public",
				params: {
					eventId: { type: "string", max: 200 }, event: { type: "enum", values: ["deposited", "pickedUp", "reservationExpired", "closed"] },
					doorId: { type: "string", max: 100 }, cabinetId: { type: "string", max: 100 }, orderId: { type: "string", max: 100 },
					version: { type: "number", integer: true, min: 0 }, at: { type: "number" }, occupied: { type: "boolean", optional: true },
				},
				async handler(this: This, ctx: Context<OrderDoorEvent>) {
					const e = ctx.params;
					const at = new Date(e.at);
					const signal: DoorSignal = e.event === "closed" ? { kind: "closed", occupied: !!e.occupied, at } : { kind: e.event, at };
					await this.applySignal(e.orderId, signal, e.eventId, e.version);
					return { ok: true };
				},
			},

			/** Internal: a payment was captured (billing's outbox, until acknowledged). */
			markPaid: {
				visibility: "public",
				params: { id: "string", orderId: "string", paymentId: "string", amountFen: "number", capturedAt: "number" },
				async handler(this: This, ctx: Context<PaymentCapturedNotice>) {
					for (let attempt = 0; attempt < 5; attempt++) {
						const order = await this.repos.orders.findById(ctx.params.orderId);
						if (!order) return { ok: true, ignored: "no such order" };
						const change = paid(order, ctx.params.paymentId, new Date(ctx.params.capturedAt));
						if (!change.ok) {
							this.logger.warn(`Payment ${ctx.params.paymentId} captured, but order ${order._id} cannot take it (${change.message})`);
							return { ok: true, ignored: change.type };
						}
						if (!Object.keys(change.set).length) return { ok: true };
						if (await this.write(order, change.set)) return { ok: true };
					}
					throw new Errors.MoleculerRetryableError("Order busy; deliver again", 503, "ORDER_BUSY");
				},
			},

			/** Internal (REPL, tests): check every door-dependent order against its door now, and report the stuck ones. */
			catchUp: {
				visibility: "public",
				async handler(this: This) {
					const checked = await this.catchUp();
					await this.reportStuck();
					return { checked };
				},
			},
		},

		methods: {
			async load(this: This, ctx: Context<unknown, AppMeta>, id: string, who: "owner" | "reader"): Promise<Doc> {
				const order = await this.repos.orders.findById(id);
				const user = ctx.meta.user as AuthUser | null | undefined;
				if (!order) throw notFound("Order", { id });
				if (!user) return order; // an internal call
				if (order.userId === user.id) return order;
				if (who === "reader") {
					if (user.roles.some(r => (STAFF as readonly string[]).includes(r))) return order;
					if (user.roles.includes("merchant") && user.merchantId === order.merchantId) return order;
				}
				// Someone else's order: as if it did not exist.
				if (!user.roles.some(r => r !== "user")) throw notFound("Order", { id });
				throw forbidden("This order is not yours");
			},

			/** Writes a change with a compare-and-set on the version; 409 when the order moved meanwhile. */
			async move(this: This, order: Doc, change: Change, extra: Record<string, unknown> = {}): Promise<Doc> {
				if (!change.ok) throw new MoleculerClientError(change.message, change.status, change.type, { status: order.status });
				if (!Object.keys(change.set).length && !Object.keys(extra).length) return order;
				const moved = await this.write(order, change.set, extra);
				if (!moved) throw conflict(`Order ${order._id} changed meanwhile; look again`, "ORDER_CHANGED");
				return moved;
			},

			/**
			 * Every write of an order goes through here: a compare-and-set on its version (null when it moved
			 * meanwhile), and a status change is announced once it is written.
			 */
			async write(this: This, order: Doc, set: Partial<Doc>, more: Record<string, unknown> = {}): Promise<Doc | null> {
				const full = { ...set, version: order.version + 1, updatedAt: new Date() };
				const moved = await this.repos.orders.updateWhere({ _id: order._id, version: order.version }, { $set: full, ...more });
				if (moved !== 1) return null;
				const now = { ...order, ...full } as Doc;
				if (now.status !== order.status) this.announce(now);
				return now;
			},

			/** Broadcast: every gateway forwards it to the streams that may see it (GET /events). */
			announce(this: This, o: Doc) {
				void this.broker.broadcast("orders.order.changed", {
					id: o._id, status: o.status, userId: o.userId, pointId: o.pointId, merchantId: o.merchantId, doorId: o.doorId, at: new Date(o.updatedAt).getTime(),
				} satisfies OrderChangedEvent);
			},

			/** A door signal, applied once (by event id) and never one older than what the order has seen. */
			async applySignal(this: This, orderId: string, signal: DoorSignal, eventId: string, doorVersion: number) {
				for (let attempt = 0; attempt < 5; attempt++) {
					const order = await this.repos.orders.findById(orderId);
					if (!order) return; // a reservation whose order was never written (it expires by itself)
					if (order.doorEvents?.includes(eventId) || doorVersion < order.doorVersion) return;
					const set = onDoor(order, signal);
					if (signal.kind === "deposited") crashPoint(config.crashPoints, "orders.deposited"); // the door closed on the bag, the order not stored yet
					const moved = await this.write(order, { ...set, doorVersion: Math.max(order.doorVersion, doorVersion) }, { $push: { doorEvents: { $each: [eventId], $slice: -20 } } });
					if (moved) {
						if (set.status) this.logger.info(`Order ${orderId}: ${order.status} → ${set.status} (door ${signal.kind})`);
						return;
					}
				}
				throw new Errors.MoleculerRetryableError("Order busy; deliver again", 503, "ORDER_BUSY");
			},

			/** Marks a refund as due (the platform is at fault), once per order; operators are told. */
			async proposeRefund(this: This, order: Doc, reason: string) {
				if (order.refundProposed) return;
				const moved = await this.repos.orders.updateWhere({ _id: order._id, refundProposed: null }, { $set: { refundProposed: { reason, at: new Date() }, updatedAt: new Date() } });
				if (moved !== 1) return;
				this.logger.warn(`Order ${order._id}: refund proposed (${reason}); an operator confirms it`);
				this.broker.emit("orders.refund.proposed", {
					orderId: order._id, paymentId: order.paymentId, amountFen: order.amountFen, reason, pointId: order.pointId, merchantId: order.merchantId, cabinetId: order.cabinetId, doorId: order.doorId,
				} satisfies RefundProposedEvent);
			},

			/** One order against its door's live state. */
			async checkWithDoor(this: This, order: Doc) {
				const door = await callDoors<DoorView>(this.broker, this.broker, "get", { doorId: order.doorId }, order.cabinetId, doorCall);
				const { set, reserveAgain } = reconcile(order, door, new Date());
				if (reserveAgain) {
					// The door forgot a reservation the order still holds (its store lost it): take it again if it is free.
					const ttlSec = Math.max(10, Math.ceil((new Date(order.reservedUntil).getTime() - Date.now()) / 1000));
					const ok = await callDoors(this.broker, this.broker, "reserve", { doorId: order.doorId, orderId: order._id, ttlSec }, order.cabinetId, doorCall).then(() => true, () => false);
					if (!ok && order.status === "reserved") Object.assign(set, { status: "expired", endedAt: new Date() });
				}
				if (!Object.keys(set).length) return;
				const moved = await this.write(order, { ...set, doorVersion: Math.max(order.doorVersion, door.version) });
				if (moved) this.logger.info(`Order ${order._id}: ${order.status} → ${set.status ?? order.status} (checked with its door)`);
			},

			/** Orders still in a passing state past their limit, after the check with their doors: operators are told. */
			async reportStuck(this: This) {
				const limit = config.alerts.thresholds.orderStuckMs;
				const stuck = await this.repos.orders.find({ query: { status: { $in: ["depositing", "picking_up"] }, updatedAt: { $lt: new Date(Date.now() - limit) } }, limit: 100 });
				for (const o of stuck) {
					const minutes = Math.round((Date.now() - new Date(o.updatedAt).getTime()) / 60_000);
					this.broker.emit("orders.order.stuck", { orderId: o._id, status: o.status, minutes, pointId: o.pointId, merchantId: o.merchantId } satisfies OrderStuckEvent);
				}
			},

			/** The current-orders gauge, counted afresh (a few counts by status). */
			async countOrders(this: This) {
				const gauge = meter(this.broker, BUSINESS_METRICS.ordersCurrent);
				const counts = await countOpenOrders(q => this.repos.orders.count(q));
				for (const status of OPEN_STATUSES) gauge.set(counts[status], { status });
			},

			/** Every order that depends on its door, checked against the door (missed news caught up). */
			async catchUp(this: This): Promise<number> {
				let checked = 0;
				let after = "";
				for (;;) {
					const batch = await this.repos.orders.find({ query: { status: { $in: [...DOOR_DEPENDENT] }, _id: { $gt: after } }, sort: "_id", limit: 200 });
					if (!batch.length) return checked;
					after = batch[batch.length - 1]._id;
					// A few at a time: the door actors are shared with live traffic.
					for (let i = 0; i < batch.length; i += 8) {
						await Promise.all(batch.slice(i, i + 8).map(o => this.checkWithDoor(o).then(() => checked++, err => this.logger.warn(`Order ${o._id}: could not check its door (${err.type ?? err.message})`))));
					}
				}
			},
		},

		created(this: This) {
			this.idempotency = new IdempotencyKeys(this.repos.keys);
			const transitions = meter(this.broker, BUSINESS_METRICS.orderTransitions);
			for (const to of ORDER_STATUSES) transitions.bind({ to });
			watchStatusWrites(this.repos.orders, (to, n) => transitions.inc({ to }, n));
		},

		async started(this: This) {
			// Catch up once the door actors answer (they may start after this service), then now and then
			// for orders in a passing state (depositing, picking up) that did not move for a while.
			void waitForServicesWhileRunning(this.broker, ["doors"], 60_000)
				.then(() => this.catchUp())
				.then(n => n && this.logger.info(`Checked ${n} order(s) against their doors`))
				// A node stopped meanwhile (a failed start, say) has nothing to catch up: no warning then.
				.catch(err => this.broker.stopping || this.logger.warn(`Catch-up with the doors failed: ${err.message}`));
			this.catchUpTimer = setInterval(() => {
				const before = new Date(Date.now() - STALE_AFTER_MS);
				void this.repos.orders
					.find({ query: { status: { $in: ["depositing", "picking_up", "reserved"] }, updatedAt: { $lt: before } }, limit: 100 })
					.then(list => Promise.all(list.map(o => this.checkWithDoor(o).catch(() => undefined))))
					.then(() => this.reportStuck())
					.catch(() => undefined);
				void this.idempotency.sweep().catch(() => undefined);
			}, CATCH_UP_EVERY_MS);
			if (this.broker.isMetricsEnabled()) {
				const count = () => {
					this.counting ??= this.countOrders()
						.catch(err => this.logger.warn(`Counting orders by status failed: ${err.message}`))
						.finally(() => (this.counting = undefined));
				};
				count();
				this.countTimer = setInterval(count, COUNT_EVERY_MS);
			}
		},

		async stopped(this: This) {
			clearInterval(this.catchUpTimer);
			clearInterval(this.countTimer);
			await this.counting;
		},
	};
}
