import {
	beginOpen, disable, enable, newDoorRecord, nextDue, onAck, onAlarm, onReport, onTimer, release, reserve,
	type DoorRecord, type Outcome,
} from "../../actors/door-machine";

const OPEN_TOO_LONG = 120_000;
const fresh = () => newDoorRecord("cab_A", 7, "cab_A:07", false, 0);
function ok(o: Outcome): DoorRecord {
	if (!o.ok) throw new Error(`refused: ${o.type} ${o.message}`);
	return o.record;
}
const events = (o: Outcome) => (o.ok ? o.effects.map(e => e.anomaly ?? e.event) : [o.type]);

describe("door state machine", () => {
	it("gives a free door to one order; a second order is refused, the same order's retry is a no-op", () => {
		const r = ok(reserve(fresh(), "o1", 900_000, 1));
		expect(r).toMatchObject({ state: "reserved", orderId: "o1", reservedUntil: 900_000, version: 1 });
		expect(reserve(r, "o2", 900_000, 2)).toMatchObject({ ok: false, status: 409, type: "DOOR_NOT_AVAILABLE" });
		const again = reserve(r, "o1", 900_000, 2);
		expect(again).toMatchObject({ ok: true, effects: [] });
		expect(ok(again)).toBe(r);
	});

	it("refuses a door that is open, occupied or disabled even if the platform thinks it is available", () => {
		expect(reserve({ ...fresh(), open: true }, "o1", 1, 1).ok).toBe(false);
		expect(reserve({ ...fresh(), occupied: true }, "o1", 1, 1).ok).toBe(false);
		expect(reserve(ok(disable(fresh(), 1)), "o1", 1, 1).ok).toBe(false);
	});

	it("runs a whole order: deposit open → ack → opened → closed on a bag → pickup open → closed empty", () => {
		let r = ok(reserve(fresh(), "o1", 900_000, 1));
		const b = beginOpen(r, { purpose: "deposit", orderId: "o1", cmdId: "C1", notAfter: 10_000 }, 2);
		expect(b.cmdId).toBe("C1");
		r = ok(b);
		r = ok(onAck(r, "C1", { ok: true }, 3));
		expect(r.pending).toBeNull();
		const opened = onReport(r, { open: true }, 4);
		expect(events(opened)).toEqual(["changed"]); // not forced: the acked command's
		r = ok(opened);
		const closed = onReport(r, { open: false, occupied: true }, 5);
		// "closed" tells the order the opening ended (with the bag in); "deposited" starts its storage time.
		expect(events(closed)).toEqual(["changed", "closed", "deposited"]);
		expect(closed.ok && closed.effects.find(e => e.event === "closed")?.detail).toEqual({ orderId: "o1", occupied: true });
		r = ok(closed);
		expect(r).toMatchObject({ state: "occupied", orderId: "o1", reservedUntil: null });
		r = ok(beginOpen(r, { purpose: "pickup", orderId: "o1", cmdId: "C2", notAfter: 20_000 }, 6));
		r = ok(onReport(r, { open: true }, 7)); // opening seen before the ack: the command ran
		expect(r.pending).toBeNull();
		const done = onReport(r, { open: false, occupied: false }, 8);
		expect(events(done)).toEqual(["changed", "closed", "pickedUp"]);
		expect(ok(done)).toMatchObject({ state: "available", orderId: null });
	});

	it("tells a deposit and a pickup from a snapshot alone, when the opening and closing reports were missed", () => {
		let r = ok(reserve(fresh(), "o1", 900_000, 1));
		r = ok(onAck(ok(beginOpen(r, { purpose: "deposit", orderId: "o1", cmdId: "C1", notAfter: 10_000 }, 2)), "C1", { ok: true }, 3));
		const snap = onReport(r, { open: false, occupied: true }, 9); // never saw it open
		expect(events(snap)).toEqual(["changed", "deposited"]);
		r = ok(snap);
		expect(r.state).toBe("occupied");
		r = ok(onAck(ok(beginOpen(r, { purpose: "pickup", orderId: "o1", cmdId: "C2", notAfter: 20_000 }, 10)), "C2", { ok: true }, 11));
		const gone = onReport(r, { open: false, occupied: false }, 12);
		expect(events(gone)).toEqual(["changed", "pickedUp"]);
		expect(ok(gone)).toMatchObject({ state: "available", orderId: null });
	});

	it("opens only for the order that holds the door, and only in the right state", () => {
		const r = ok(reserve(fresh(), "o1", 900_000, 1));
		expect(beginOpen(r, { purpose: "deposit", orderId: "o2", cmdId: "X", notAfter: 1 }, 2)).toMatchObject({ ok: false, type: "DOOR_NOT_HELD" });
		expect(beginOpen(r, { purpose: "pickup", orderId: "o1", cmdId: "X", notAfter: 1 }, 2)).toMatchObject({ ok: false, type: "INVALID_DOOR_STATE" });
		expect(beginOpen(fresh(), { purpose: "operator", orderId: null, cmdId: "X", notAfter: 1 }, 2).ok).toBe(true);
	});

	it("reuses the cmdId when the same open is asked again while in flight, and refuses a different one", () => {
		let r = ok(reserve(fresh(), "o1", 900_000, 1));
		r = ok(beginOpen(r, { purpose: "deposit", orderId: "o1", cmdId: "C1", notAfter: 10_000 }, 2));
		const again = beginOpen(r, { purpose: "deposit", orderId: "o1", cmdId: "C9", notAfter: 20_000 }, 3);
		expect(again.cmdId).toBe("C1");
		expect(beginOpen(r, { purpose: "operator", orderId: null, cmdId: "C8", notAfter: 20_000 }, 3)).toMatchObject({ ok: false, type: "DOOR_BUSY" });
	});

	it("makes an unacked command unknown, and settles it from reports, never by itself", () => {
		let r = ok(reserve(fresh(), "o1", 900_000, 1));
		r = ok(beginOpen(r, { purpose: "deposit", orderId: "o1", cmdId: "C1", notAfter: 10_000 }, 2));
		expect(nextDue(r, OPEN_TOO_LONG)).toBe(10_000);
		const timeout = onTimer(r, 10_001, OPEN_TOO_LONG);
		expect(events(timeout)).toEqual(["command_unknown"]);
		r = ok(timeout);
		expect(r.pending).toMatchObject({ cmdId: "C1", unknown: true });
		// A closed door in a report after the deadline, no opening since sending: it never ran.
		const settled = ok(onReport(r, { open: false, occupied: false }, 10_002));
		expect(settled.pending).toBeNull();
		expect(settled.state).toBe("reserved");
		// The other way: the door is seen open → it ran.
		const ran = ok(onReport(r, { open: true }, 10_003));
		expect(ran).toMatchObject({ pending: null, open: true });
	});

	it("a bag nobody holds the door for makes the door occupied, never available, until it is taken out", () => {
		const found = ok(onReport(fresh(), { open: false, occupied: true }, 1));
		expect(found).toMatchObject({ state: "occupied", orderId: null, occupied: true });
		expect(reserve(found, "o9", 900_000, 2)).toMatchObject({ ok: false, type: "DOOR_NOT_AVAILABLE" });
		// Also when the record already knew the sensor but not the state (loaded from before).
		expect(ok(onReport({ ...fresh(), occupied: true }, { open: false, occupied: true }, 1)).state).toBe("occupied");
		const emptied = ok(onReport(ok(onReport(found, { open: true }, 3)), { open: false, occupied: false }, 4));
		expect(emptied).toMatchObject({ state: "available", orderId: null, occupied: false });
	});

	it("flags a forced opening, a jam, an unexpected bag and a door left open", () => {
		expect(events(onReport(fresh(), { open: true }, 1))).toEqual(["changed", "forced_open"]);
		expect(events(onReport(fresh(), { open: false, occupied: true }, 1))).toEqual(["changed", "unexpected_occupied"]);
		let r = ok(reserve(fresh(), "o1", 900_000, 1));
		r = ok(beginOpen(r, { purpose: "deposit", orderId: "o1", cmdId: "C1", notAfter: 10_000 }, 2));
		const jam = onAck(r, "C1", { ok: false, error: "JAMMED" }, 3);
		expect(events(jam)).toEqual(["changed", "jammed"]);
		expect(ok(jam)).toMatchObject({ state: "fault", fault: "jammed", orderId: "o1" });
		expect(ok(onAlarm(fresh(), "jammed", 1)).state).toBe("fault");
		const open = ok(onReport(ok(onAck(ok(beginOpen(fresh(), { purpose: "operator", orderId: null, cmdId: "C", notAfter: 9 }, 1)), "C", { ok: true }, 2)), { open: true }, 3));
		expect(nextDue(open, OPEN_TOO_LONG)).toBe(3 + OPEN_TOO_LONG);
		expect(events(onTimer(open, 3 + OPEN_TOO_LONG - 1, OPEN_TOO_LONG))).toEqual([]);
		const left = onTimer(open, 3 + OPEN_TOO_LONG, OPEN_TOO_LONG);
		expect(events(left)).toEqual(["door_left_open"]);
		expect(events(onTimer(ok(left), 4 + OPEN_TOO_LONG, OPEN_TOO_LONG))).toEqual([]); // once per opening
	});

	it("expires a reservation that was never opened, and not one whose door is open", () => {
		const r = ok(reserve(fresh(), "o1", 1000, 1));
		const exp = onTimer(r, 1000, OPEN_TOO_LONG);
		expect(events(exp)).toEqual(["changed", "reservationExpired"]);
		expect(ok(exp)).toMatchObject({ state: "available", orderId: null });
		expect(events(onTimer({ ...r, open: true }, 1000, OPEN_TOO_LONG))).toEqual([]);
	});

	it("disables only a door no order holds; enable clears a fault", () => {
		const held = ok(reserve(fresh(), "o1", 1000, 1));
		expect(disable(held, 2)).toMatchObject({ ok: false, type: "DOOR_IN_USE" });
		expect(ok(enable(ok(disable(fresh(), 1)), 2)).state).toBe("available");
		expect(ok(enable(ok(onAlarm(held, "jammed", 2)), 3))).toMatchObject({ state: "reserved", fault: null });
	});

	it("releases only for the holding order, and a repeat is a no-op", () => {
		const r = ok(reserve(fresh(), "o1", 1000, 1));
		expect(release(r, "o2", 2)).toMatchObject({ ok: false, type: "DOOR_HELD_BY_ANOTHER_ORDER" });
		const freed = ok(release(r, "o1", 2));
		expect(freed).toMatchObject({ state: "available", orderId: null });
		expect(release(freed, "o1", 3)).toMatchObject({ ok: true, effects: [] });
	});
});
