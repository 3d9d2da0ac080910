import { ConnectionCaps, PacketSizeGuard } from "../../services/hardware/connection-guard";
import { LogLimiter, logSafe } from "../../lib/log-limiter";

/** An MQTT fixed header: type byte, then the remaining length as MQTT encodes it. */
function header(type: number, remaining: number): Buffer {
	const bytes = [type];
	do {
		let b = remaining % 128;
		remaining = Math.floor(remaining / 128);
		if (remaining > 0) b |= 0x80;
		bytes.push(b);
	} while (remaining > 0);
	return Buffer.from(bytes);
}
const packet = (type: number, bodyBytes: number) => Buffer.concat([header(type, bodyBytes), Buffer.alloc(bodyBytes, 0x61)]);

describe("PacketSizeGuard", () => {
	it("lets packets up to the limit through, however the stream is cut", () => {
		const stream = Buffer.concat([packet(0x10, 40), packet(0x30, 1000), packet(0xc0, 0), packet(0x30, 127), packet(0x30, 128), packet(0x30, 16384)]);
		const whole = new PacketSizeGuard(16384);
		expect(whole.push(stream)).toBe(true);
		const bytewise = new PacketSizeGuard(16384);
		expect([...stream].every(b => bytewise.push(Buffer.from([b])))).toBe(true);
	});

	it("fails on the header of a packet over the limit, before its body, and stays failed", () => {
		const g = new PacketSizeGuard(64 * 1024);
		expect(g.push(packet(0x30, 100))).toBe(true);
		expect(g.push(header(0x10, 200 * 1024 * 1024))).toBe(false); // a 200 MB CONNECT: its 5 header bytes decide
		expect(g.push(packet(0xc0, 0))).toBe(false);
		expect(new PacketSizeGuard(64 * 1024).push(header(0x30, 64 * 1024 + 1))).toBe(false);
		expect(new PacketSizeGuard(64 * 1024).push(header(0x30, 64 * 1024))).toBe(true);
	});

	it("decides from the first length bytes already when they announce too much", () => {
		const g = new PacketSizeGuard(1000);
		expect(g.push(Buffer.from([0x10]))).toBe(true);
		expect(g.push(Buffer.from([0xff]))).toBe(true); // 127 so far, more to come
		expect(g.push(Buffer.from([0x08 | 0x80]))).toBe(false); // ≥ 127 + 8·128 already
	});

	it("refuses a fifth length byte (malformed)", () => {
		expect(new PacketSizeGuard(Number.MAX_SAFE_INTEGER).push(Buffer.from([0x30, 0x80, 0x80, 0x80, 0x80, 0x01]))).toBe(false);
		expect(new PacketSizeGuard(Number.MAX_SAFE_INTEGER).push(header(0x30, 268_435_455))).toBe(true); // the largest MQTT allows
	});
});

describe("ConnectionCaps", () => {
	it("caps unauthenticated connections per address; authenticated ones make room", () => {
		const caps = new ConnectionCaps({ maxPendingPerAddress: 2, maxConnectionsPerAddress: 10 });
		const a = caps.admit("10.0.0.1");
		const b = caps.admit("10.0.0.1");
		expect(caps.admit("10.0.0.1")).toBe("pending");
		expect(typeof caps.admit("10.0.0.2")).toBe("object"); // another address is not affected
		if (typeof a === "string" || typeof b === "string") throw new Error("admitted");
		a.authenticated();
		a.authenticated(); // idempotent
		expect(caps.count("10.0.0.1")).toEqual({ pending: 1, total: 2 });
		expect(typeof caps.admit("10.0.0.1")).toBe("object");
		expect(caps.admit("10.0.0.1")).toBe("pending");
	});

	it("caps all connections per address, and forgets an address once its connections are closed", () => {
		const caps = new ConnectionCaps({ maxPendingPerAddress: 5, maxConnectionsPerAddress: 3 });
		const tickets = [1, 2, 3].map(() => caps.admit("nat"));
		for (const t of tickets) if (typeof t !== "string") t.authenticated();
		expect(caps.admit("nat")).toBe("total");
		for (const t of tickets) if (typeof t !== "string") {
			t.release();
			t.release(); // idempotent
		}
		expect(caps.count("nat")).toEqual({ pending: 0, total: 0 });
		expect((caps as any).byAddress.size).toBe(0);
		const pendingThenClosed = caps.admit("nat");
		if (typeof pendingThenClosed === "string") throw new Error("admitted");
		pendingThenClosed.release();
		pendingThenClosed.authenticated(); // after close: no effect
		expect(caps.count("nat")).toEqual({ pending: 0, total: 0 });
	});
});

describe("LogLimiter", () => {
	it("logs the first denial, then one line per interval with the count of those left out", () => {
		let now = 0;
		const log = new LogLimiter({ intervalMs: 60_000, maxKeys: 100, now: () => now });
		expect(log.note("cab_A")).toEqual({ suppressed: 0 });
		for (let i = 0; i < 500; i++) expect(log.note("cab_A")).toBeNull();
		expect(log.note("cab_B")).toEqual({ suppressed: 0 }); // per key
		now = 59_999;
		expect(log.note("cab_A")).toBeNull();
		now = 60_000;
		expect(log.note("cab_A")).toEqual({ suppressed: 501 });
		now = 200_000;
		expect(log.note("cab_A")).toEqual({ suppressed: 0 });
	});

	it("keeps at most maxKeys, forgetting the least recently logged", () => {
		let now = 0;
		const log = new LogLimiter({ intervalMs: 60_000, maxKeys: 3, now: () => now });
		for (let i = 0; i < 10_000; i++) log.note(`10.0.${i >> 8}.${i & 255}`);
		expect(log.size).toBe(3);
		log.note("a");
		log.note("b");
		log.note("c");
		now = 1;
		expect(log.note("a")).toBeNull(); // still remembered
		log.note("d"); // forgets the least recently logged: "a"
		expect(log.note("a")).toEqual({ suppressed: 0 });
	});

	it("quotes what an attacker chose before it goes into a line, and cuts it short", () => {
		expect(logSafe('cab\n2024-01-01 INFO forged "line"')).toBe('"cab\\n2024-01-01 INFO forged \\"line\\""');
		expect(logSafe("x".repeat(1000))).toHaveLength(120 + 3);
	});
});
