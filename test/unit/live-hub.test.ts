/**
 * The pure parts of GET /events: the query's checks, who sees which event
 * (the hub's indexes), and the bounded writer under a reader that stops.
 */
import { EventEmitter } from "node:events";
import { accessOf, LiveHub, MAX_TRACKED_ORDERS, parseLiveQuery, type Subscriber } from "../../services/api/live-hub";
import { SseWriter, sseFrame, type SseSink } from "../../services/api/sse";
import type { AuthUser } from "../../types/auth";
import type { DoorStateChangedEvent, OrderChangedEvent } from "../../types/events";

const USER: AuthUser = { id: "usr_alice0", roles: ["user"], sid: "s1" };
const MERCHANT: AuthUser = { id: "usr_merch0", roles: ["merchant"], merchantId: "mer_one000", sid: "s2" };
const OPERATOR: AuthUser = { id: "usr_oper00", roles: ["operator"], sid: "s3" };

function sub(user: AuthUser, query: Record<string, unknown> = {}): Subscriber & { got: string[] } {
	const access = accessOf(user);
	const got: string[] = [];
	return { user, access, filters: parseLiveQuery(query, access), send: f => void got.push(f), got };
}

const door = (over: Partial<DoorStateChangedEvent> = {}): DoorStateChangedEvent => ({
	doorId: "cab_one000:1", cabinetId: "cab_one000", pointId: "pt_one0000", merchantId: "mer_one000", no: 1, size: "M",
	version: 1, at: 1, state: "reserved", orderId: "ord_a00000", open: false, occupied: false, ...over,
});
const order = (over: Partial<OrderChangedEvent> = {}): OrderChangedEvent => ({
	id: "ord_a00000", status: "reserved", userId: USER.id, pointId: "pt_one0000", merchantId: "mer_one000", doorId: "cab_one000:1", at: 1, ...over,
});

describe("the query of GET /events", () => {
	it("defaults to every topic the role may see", () => {
		expect([...parseLiveQuery({}, accessOf(USER)).topics]).toEqual(["door", "order"]);
		expect([...parseLiveQuery({}, accessOf(MERCHANT)).topics]).toEqual(["door", "cabinet", "order"]);
		expect([...parseLiveQuery({}, accessOf(OPERATOR)).topics]).toEqual(["door", "cabinet", "order", "alert"]);
	});

	it("refuses malformed filters with 422 listing each, and topics beyond the role with 403", () => {
		const op = accessOf(OPERATOR);
		expect(() => parseLiveQuery({ topics: "door,rain", pointId: "x", cabinetId: ["cab_one000"], more: "1" }, op)).toThrow(
			expect.objectContaining({ code: 422, type: "VALIDATION_ERROR", data: expect.arrayContaining([expect.objectContaining({ field: "topics" }), expect.objectContaining({ field: "pointId" }), expect.objectContaining({ field: "cabinetId" }), expect.objectContaining({ field: "more" })]) }),
		);
		expect(() => parseLiveQuery({ topics: "" }, op)).toThrow(expect.objectContaining({ code: 422 }));
		expect(() => parseLiveQuery({ topics: "door,".repeat(30) }, op)).toThrow(expect.objectContaining({ code: 422 }));
		expect(() => parseLiveQuery({ topics: "alert" }, accessOf(MERCHANT))).toThrow(expect.objectContaining({ code: 403, type: "FORBIDDEN" }));
		expect(parseLiveQuery({ topics: "door,door", cabinetId: "cab_one000" }, op)).toEqual({ topics: new Set(["door"]), pointId: undefined, cabinetId: "cab_one000" });
	});

	it("scopes a merchant account without a merchant to nothing", () => {
		expect(accessOf({ ...MERCHANT, merchantId: undefined }).scope).toEqual({ kind: "merchant", merchantId: "-" });
		expect(accessOf({ ...OPERATOR, roles: ["user", "admin"] }).role).toBe("admin");
	});
});

describe("the hub", () => {
	it("gives a user its own orders and the doors of its open orders only", () => {
		const hub = new LiveHub();
		const alice = sub(USER);
		hub.add(alice);
		hub.door(door()); // not followed yet: its order was not seen
		hub.order(order({ userId: "usr_bob000", id: "ord_b00000", doorId: "cab_one000:2" }));
		hub.order(order());
		hub.door(door({ state: "occupied", occupied: true }));
		hub.door(door({ doorId: "cab_one000:2", orderId: "ord_b00000" }));
		hub.door(door({ orderId: "ord_other0" })); // its door, someone else's reservation
		expect(alice.got.map(f => f.split("\n")[0])).toEqual(["event: order", "event: door"]);
		expect(alice.got[1]).toContain('"occupied":true');
		// Ended: the door is no longer followed.
		hub.order(order({ status: "completed" }));
		hub.door(door({ orderId: null, state: "available" }));
		expect(alice.got).toHaveLength(3);
		expect(hub.followedDoors).toBe(0);
	});

	it("forgets a user's doors with its last stream, and follows at most MAX_TRACKED_ORDERS per user", () => {
		const hub = new LiveHub();
		const [a, b] = [sub(USER), sub(USER)];
		hub.add(a);
		hub.add(b);
		hub.follow(USER.id, Array.from({ length: MAX_TRACKED_ORDERS + 5 }, (_, i) => ({ id: `ord_${i}aaaaaa`, status: "stored", doorId: `cab_one000:${i}` })));
		expect(hub.followedDoors).toBe(MAX_TRACKED_ORDERS);
		hub.remove(a);
		expect([hub.size, hub.streamsOf(USER.id), hub.followedDoors]).toEqual([1, 1, MAX_TRACKED_ORDERS]);
		hub.remove(b);
		expect([hub.size, hub.streamsOf(USER.id), hub.followedDoors]).toEqual([0, 0, 0]);
		// Orders of users without a stream are not followed.
		hub.order(order());
		expect(hub.followedDoors).toBe(0);
	});

	it("gives a merchant its own points, staff everything, each filtered, one frame encoded for all", () => {
		const hub = new LiveHub();
		const merchant = sub(MERCHANT);
		const otherMerchant = sub({ ...MERCHANT, id: "usr_merch1", merchantId: "mer_two000" });
		const op = sub(OPERATOR);
		const opOnCab2 = sub(OPERATOR, { cabinetId: "cab_two000" });
		const opAlerts = sub(OPERATOR, { topics: "alert", pointId: "pt_one0000" });
		for (const s of [merchant, otherMerchant, op, opOnCab2, opAlerts]) hub.add(s);
		hub.door(door());
		hub.cabinet({ cabinetId: "cab_one000", pointId: "pt_one0000", merchantId: "mer_one000", reason: "lwt", at: 2 }, false);
		hub.order(order());
		hub.alert({ id: "alr_1", name: "CabinetOffline", severity: "P2", state: "firing", labels: { pointId: "pt_one0000" }, startsAt: "2025-01-01T00:00:00.000Z" });
		hub.alert({ id: "alr_2", name: "OrderStuck", severity: "P3", state: "firing", labels: {}, startsAt: "2025-01-01T00:00:00.000Z" });
		const types = (s: { got: string[] }) => s.got.map(f => f.split("\n")[0].slice(7));
		expect(types(merchant)).toEqual(["door", "cabinet", "order"]);
		expect(types(otherMerchant)).toEqual([]);
		expect(types(op)).toEqual(["door", "cabinet", "order", "alert", "alert"]);
		expect(types(opOnCab2)).toEqual([]);
		expect(types(opAlerts)).toEqual(["alert"]);
		expect(merchant.got[0]).toBe(op.got[0]); // the same string
		expect(merchant.got[2]).not.toContain("userId");
	});
});

/** A response whose reader took `accept` writes, then stopped. */
class StalledSink extends EventEmitter implements SseSink {
	written: string[] = [];
	ended?: string;
	destroyed = false;
	constructor(private accept: number) {
		super();
	}
	write(chunk: string) {
		this.written.push(chunk);
		return this.written.length < this.accept;
	}
	end(chunk?: string) {
		this.ended = chunk ?? "";
	}
	destroy() {
		this.destroyed = true;
		this.emit("close");
	}
}

describe("the bounded writer", () => {
	it("queues while the socket does not drain, sends in order once it does", () => {
		const sink = new StalledSink(1);
		const w = new SseWriter(sink, { maxEvents: 3, maxBytes: 10_000 }, () => undefined);
		for (const n of [1, 2, 3, 4]) w.send(sseFrame("door", { n }));
		expect(sink.written).toHaveLength(1);
		expect(w.queued.events).toBe(3);
		(sink as unknown as { accept: number }).accept = 100;
		sink.emit("drain");
		expect(sink.written.map(f => JSON.parse(f.split("data: ")[1]).n)).toEqual([1, 2, 3, 4]);
		expect(w.queued).toEqual({ events: 0, bytes: 0 });
	});

	it("tells a reader that stopped `overflow` and ends, never holding more than its caps", () => {
		for (const limits of [{ maxEvents: 5, maxBytes: 1_000_000 }, { maxEvents: 1000, maxBytes: 200 }]) {
			const sink = new StalledSink(1);
			const reasons: string[] = [];
			const w = new SseWriter(sink, limits, r => void reasons.push(r));
			let accepted = 0;
			for (let i = 0; i < 10_000 && w.send(sseFrame("door", { i, pad: "x".repeat(20) })); i++) accepted++;
			expect(reasons).toEqual(["overflow"]);
			expect(sink.ended).toMatch(/^event: overflow\n/);
			expect(w.peak.events).toBeLessThanOrEqual(limits.maxEvents);
			expect(w.peak.bytes).toBeLessThanOrEqual(limits.maxBytes);
			expect(accepted).toBeLessThan(10_000);
			expect(w.send("late")).toBe(false);
			expect(sink.listenerCount("drain")).toBe(0);
			sink.destroy();
			expect(sink.listenerCount("close")).toBe(0);
		}
	});

	it("treats a hang-up as the client's close, once", () => {
		const sink = new StalledSink(100);
		const reasons: string[] = [];
		const w = new SseWriter(sink, { maxEvents: 5, maxBytes: 1000 }, r => void reasons.push(r));
		sink.emit("close");
		w.close("revoked", "x");
		expect(reasons).toEqual(["client"]);
		expect([sink.listenerCount("drain"), sink.listenerCount("close")]).toEqual([0, 0]);
	});
});
