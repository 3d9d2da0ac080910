/**
 * The operator REPL's pure parts: argument reading, durations and matchers,
 * and the text printed for each answer (lib/repl/text.ts).
 */
import {
	clean, displayWidth, fenToYuan, formatAlerts, formatCabinet, formatDoor, formatError, formatOffline, formatOpenQuestion, formatOrder,
	formatSilences, formatTable, isYes, maskUrl, noPlatformWarning, pageFooter, parseArgs, parseDuration, parseMatcher, platformNodes,
	type ArgSpec, type DoorAnswer, type OrderAnswer,
} from "../../lib/repl/text";

const openSpec: ArgSpec = { positionals: ["doorId"], options: { reason: "string", yes: "flag" } };
const silenceSpec: ArgSpec = { positionals: ["sub?", "silenceId?"], options: { label: "strings", for: "string", page: "int" } };

describe("parseArgs", () => {
	it("reads positionals, --name value, --name=value, flags and repeated options", () => {
		expect(parseArgs(["cab_1:2", "--reason", "bag stuck", "--yes"], openSpec)).toEqual({
			ok: true, value: { positionals: { doorId: "cab_1:2" }, options: { reason: "bag stuck", yes: true } },
		});
		expect(parseArgs(["--label", "a=b", "--label=c=~x.*", "--page", "2"], silenceSpec)).toEqual({
			ok: true, value: { positionals: { sub: undefined, silenceId: undefined }, options: { label: ["a=b", "c=~x.*"], page: 2 } },
		});
	});

	it("names the mistake: unknown option, missing value, missing or extra positional, bad number", () => {
				expect(parseArgs(["d", "--force"], openSpec)).toEqual({ ok: false, error: "unknown option --force (known: --reason, --yes)" });
		expect(parseArgs(["d", "--reason"], openSpec)).toEqual({ ok: false, error: "--reason needs a value" });
		expect(parseArgs(["d", "--reason", "--yes"], openSpec)).toEqual({ ok: false, error: "--reason needs a value" });
		expect(parseArgs(["--reason", "x"], openSpec)).toEqual({ ok: false, error: "missing <doorId>" });
		expect(parseArgs(["a", "b"], openSpec)).toEqual({ ok: false, error: 'unexpected argument "b"' });
		expect(parseArgs(["d", "--yes=1"], openSpec)).toEqual({ ok: false, error: "--yes takes no value" });
		const paged: ArgSpec = { positionals: [], options: { page: "int" } };
		expect(parseArgs(["--page", "0"], paged)).toMatchObject({ ok: false, error: '--page must be a whole number ≥ 1, not "0"' });
		expect(parseArgs(["--page", "1e3"], paged)).toMatchObject({ ok: false });
		expect(parseArgs(["--toString", "x"], paged)).toMatchObject({ ok: false, error: expect.stringContaining("unknown option --toString") });
	});

	it("bounds hostile input", () => {
		expect(parseArgs(["x".repeat(501)], { positionals: ["a"], options: {} })).toMatchObject({ ok: false, error: expect.stringContaining("longer than 500") });
		expect(parseArgs(Array(41).fill("a"), { positionals: ["a"], options: {} })).toMatchObject({ ok: false, error: expect.stringContaining("too many") });
		expect(parseArgs(["a", "--\u001b[31mred"], { positionals: ["a"], options: {} })).toMatchObject({ ok: false, error: expect.not.stringContaining("\u001b") });
	});
});

describe("durations, matchers, answers", () => {
	it("reads durations from 1m to 30d", () => {
		expect(parseDuration("2h")).toEqual({ ok: true, value: 7_200_000 });
		expect(parseDuration("1h30m")).toEqual({ ok: true, value: 5_400_000 });
		expect(parseDuration("90s")).toEqual({ ok: true, value: 90_000 });
		expect(parseDuration("30d")).toEqual({ ok: true, value: 30 * 86_400_000 });
		expect(parseDuration("31d")).toMatchObject({ ok: false, error: "a silence lasts at most 30d" });
		expect(parseDuration("30s")).toMatchObject({ ok: false, error: "a silence lasts at least 1m" });
		for (const bad of ["", "2", "h", "2 h", "-2h", "2w", "1.5h"]) expect(parseDuration(bad).ok).toBe(false);
	});

	it("reads label matchers as Alertmanager writes them", () => {
		expect(parseMatcher("cabinetId=cab_1")).toEqual({ ok: true, value: { label: "cabinetId", value: "cab_1" } });
		expect(parseMatcher("name=~Cabinet.*")).toEqual({ ok: true, value: { label: "name", value: "Cabinet.*", regex: true } });
		expect(parseMatcher("a=x=y")).toEqual({ ok: true, value: { label: "a", value: "x=y" } });
		expect(parseMatcher("cabinetId")).toMatchObject({ ok: false });
		expect(parseMatcher("=x")).toMatchObject({ ok: false });
		expect(parseMatcher("a=~(")).toMatchObject({ ok: false, error: "not a regular expression: (" });
	});

	it("confirms only on an explicit yes", () => {
		for (const yes of ["y", "Y", "yes", " YES "]) expect(isYes(yes)).toBe(true);
		for (const no of ["", "n", "no", "yep", "y y", "ok"]) expect(isYes(no)).toBe(false);
	});
});

describe("text", () => {
	it("strips control characters and bidi overrides, and cuts long values", () => {
		expect(clean("a\u001b[2Jb\u202ec\nd")).toBe("a?[2Jb?c?d");
		expect(clean("x".repeat(100), 10)).toBe("xxxxxxxxx…");
		expect(clean(null)).toBe("-");
		expect(clean({ a: 1 })).toBe('{"a":1}');
	});

	it("aligns tables by display width (CJK takes two columns)", () => {
		expect(displayWidth("门店1")).toBe(5);
		expect(formatTable([{ a: "门店", b: 1 }, { a: "xyz", b: true }], ["a", "b"])).toBe(["a     b", "----  ----", "门店  1", "xyz   true"].join("\n"));
		expect(formatTable([], ["a"])).toBe("(none)");
	});

	it("pages", () => {
		expect(pageFooter({ total: 45, page: 1, pageSize: 20 }, "offline", "offline")).toBe("page 1 of 3 (45 offline) — next: offline --page 2");
		expect(pageFooter({ total: 45, page: 3, pageSize: 20 }, "offline", "offline")).toBe("page 3 of 3 (45 offline)");
		expect(pageFooter({ total: 0, page: 1, pageSize: 20 }, "offline", "offline")).toBe("page 1 of 1 (0 offline)");
	});

	const door: DoorAnswer = { id: "cab_1:2", cabinetId: "cab_1", pointId: "pt_1", no: 2, size: "M", disabled: false, state: "occupied", open: false, occupied: true, orderId: "ord_9", live: true };

	it("formats a door, live or not", () => {
		expect(formatDoor(door)).toBe("door cab_1:2  (no 2, size M) in cabinet cab_1 at point pt_1\nstate occupied  open no  occupied yes  order ord_9");
		expect(formatDoor({ ...door, live: false, liveError: "SERVICE_UNAVAILABLE", state: null, open: null, occupied: null, disabled: true }).split("\n")[1])
			.toBe("live state unknown (SERVICE_UNAVAILABLE): the doors node could not be asked; the door is disabled");
	});

	it("asks before opening with what is behind the door", () => {
		expect(formatOpenQuestion("cab_1:2", "bag stuck", door)).toBe('Open door cab_1:2 (occupied, holds a bag, order ord_9) now, reason "bag stuck"? [y/N] ');
		expect(formatOpenQuestion("cab_1:2", "bag stuck", null)).toBe('Open door cab_1:2 (state not known) now, reason "bag stuck"? [y/N] ');
	});

	it("formats a cabinet whose live part is unknown without guessing", () => {
		const text = formatCabinet({
			id: "cab_1", pointId: "pt_1", merchantId: "m_1", online: null, lastSeenAt: null, live: false, liveError: "SERVICE_UNAVAILABLE",
			doors: [{ id: "cab_1:1", no: 1, size: "S", state: null, open: null, occupied: null }],
		});
		expect(text).toContain("live state unknown (SERVICE_UNAVAILABLE)");
		expect(text.split("\n")[4]).toMatch(/^cab_1:1\s+S\s+unknown\s+unknown\s+unknown$/);
	});

	it("formats offline cabinets, partial answers and none", () => {
		const row = { id: "cab_1", pointId: "pt_1", pointName: "人民广场", merchantId: "m_1", cityCode: "SH", online: false, lastSeenAt: null };
		const text = formatOffline({ rows: [row], total: 21, page: 1, pageSize: 20, partial: true, unavailable: ["doors-2"] });
		expect(text.split("\n")[0]).toBe("WARNING: partial answer — some doors nodes could not be asked (doors-2); their cabinets are missing below.");
		expect(text).toMatch(/cab_1\s+SH\s+人民广场\s+pt_1\s+m_1\s+never/);
		expect(text).toContain("page 1 of 2 (21 offline) — next: offline --page 2");
		expect(formatOffline({ rows: [], total: 0, page: 1, pageSize: 20 })).toBe("No cabinet is offline.");
	});

	it("formats an order with money from integer fen", () => {
		expect(fenToYuan(1234)).toBe("¥12.34");
		expect(fenToYuan(5)).toBe("¥0.05");
		const o: OrderAnswer = {
			id: "ord_1", userId: "usr_1", pointId: "pt_1", cabinetId: "cab_1", doorId: "cab_1:2", size: "M", status: "paid", reservedUntil: "t0",
			storedFrom: "t1", amountFen: 800, paidAt: "t2", completedAt: null, anomalies: ["late_close"], refundProposed: null, createdAt: "t0", updatedAt: "t2",
		};
		const text = formatOrder(o);
		expect(text).toMatch(/^status {10}paid$/m);
		expect(text).toMatch(/^amount {10}¥8\.00$/m);
		expect(text).toMatch(/^anomalies {7}late_close$/m);
		expect(formatOrder({ ...o, refundProposed: { reason: "door_fault", at: "t3" } })).toMatch(/^refund proposed {2}door_fault \(t3\)$/m);
	});

	it("formats alerts and silences", () => {
		const alert = { id: "al_1", name: "CabinetOffline", severity: "P2", state: "firing", labels: { cabinetId: "cab_1" }, summary: "cab_1 offline", startsAt: "t0", endsAt: null, silencedBy: "sil_1" };
		const text = formatAlerts({ rows: [alert], total: 1, page: 1, pageSize: 20 }, "firing");
		expect(text).toMatch(/P2\s+CabinetOffline\s+t0\s+cabinetId=cab_1\s+cab_1 offline\s+silenced sil_1/);
		expect(formatAlerts({ rows: [], total: 0, page: 1, pageSize: 20 }, "firing")).toBe("No alert is firing.");
		const s = { id: "sil_1", matchers: [{ label: "cabinetId", value: "cab_1" }, { label: "name", value: "Cab.*", regex: true }], startsAt: "t0", endsAt: "t1", comment: "maintenance", createdBy: "repl:ops@h" };
		expect(formatSilences({ rows: [s], total: 1, page: 1, pageSize: 20 })).toMatch(/sil_1\s+cabinetId=cab_1 name=~Cab\.\*\s+t0\s+t1\s+repl:ops@h\s+maintenance/);
		expect(formatSilences({ rows: [], total: 0, page: 1, pageSize: 20 })).toBe("No silence in force.");
	});

	it("formats errors from across the mesh (plain objects)", () => {
		expect(formatError({ code: 503, type: "CABINET_OFFLINE", message: "Cabinet cab_1 is offline" })).toBe("error 503 CABINET_OFFLINE: Cabinet cab_1 is offline");
		expect(formatError({ code: 422, type: "VALIDATION_ERROR", message: "bad", data: [{ field: "reason", message: "too short" }] })).toBe("error 422 VALIDATION_ERROR: bad\n  reason: too short");
		expect(formatError({ code: 404, type: "SERVICE_NOT_FOUND", message: "x", data: { action: "merchants.getDoor" } }))
			.toBe("error: merchants.getDoor is not offered by any node of the mesh (SERVICE_NOT_FOUND): is its service running, on this NAMESPACE?");
	});
});

describe("the mesh", () => {
	it("finds the nodes hosting platform services", () => {
		const services = [{ name: "$node", nodeID: "a" }, { name: "merchants", nodeID: "b" }, { name: "doors", nodeID: "b" }, { name: "greeter", nodeID: "c" }, { name: "alerts", nodeID: "a" }];
		expect(platformNodes(services, ["merchants", "doors", "alerts"])).toEqual(["a", "b"]);
		expect(platformNodes(services.filter(s => s.name === "greeter"), ["merchants"])).toEqual([]);
	});

	it("warns naming the namespace and the transporter, without its credentials", () => {
		expect(maskUrl("nats://user:secret@host:4222")).toBe("nats://***@host:4222");
		expect(noPlatformWarning("lockers-typo", "nats://u:p@127.0.0.1:4222", [])).toBe(
			'WARNING: no platform node found on namespace "lockers-typo" via transporter nats://***@127.0.0.1:4222; it knows no other node.\n' +
			"  Check NAMESPACE and TRANSPORTER (they must match the platform's nodes); nothing was asked.",
		);
		expect(noPlatformWarning("x", null, ["n1"])).toContain("via no transporter (embedded); it knows only n1.");
	});
});
