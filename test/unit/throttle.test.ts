import { MemoryCounterStore } from "../../lib/counters";
import { decideLogin, LoginThrottle } from "../../services/users/throttle";

const cfg = { slowAfter: 3, lockAfter: 6, ipLockAfter: 10, lockMs: 15 * 60_000, maxDelayMs: 60_000 };

describe("login throttling", () => {
	let now: number;
	let throttle: LoginThrottle;
	beforeEach(() => {
		now = 1_000_000;
		throttle = new LoginThrottle(new MemoryCounterStore(), cfg, () => now);
	});

	it("allows attempts below the slow-down threshold", async () => {
		await throttle.recordFailure("alice", "1.1.1.1");
		await throttle.recordFailure("alice", "1.1.1.1");
		expect(await throttle.check("alice", "1.1.1.1")).toEqual({ allowed: true });
	});

	it("slows down: each failure past the threshold doubles the wait", async () => {
		for (let i = 0; i < 3; i++) await throttle.recordFailure("alice", "1.1.1.1");
		expect(await throttle.check("alice", "1.1.1.1")).toEqual({ allowed: false, retryAfterMs: 1000, reason: "account_slowed" });
		now += 1000;
		expect((await throttle.check("alice", "1.1.1.1")).allowed).toBe(true);
		await throttle.recordFailure("alice", "1.1.1.1");
		expect(await throttle.check("alice", "1.1.1.1")).toMatchObject({ allowed: false, retryAfterMs: 2000 });
	});

	it("locks the account after lockAfter failures, for lockMs after the last one", async () => {
		for (let i = 0; i < 6; i++) {
			now += 100_000;
			await throttle.recordFailure("alice", `10.0.0.${i}`);
		}
		expect(await throttle.check("alice", "9.9.9.9")).toEqual({ allowed: false, retryAfterMs: cfg.lockMs, reason: "account_locked" });
		now += cfg.lockMs - 1;
		expect((await throttle.check("alice", "9.9.9.9")).allowed).toBe(false);
		now += 1;
		expect(await throttle.check("alice", "9.9.9.9")).toEqual({ allowed: true });
	});

	it("counts per account: another account is not affected", async () => {
		for (let i = 0; i < 6; i++) await throttle.recordFailure("alice", undefined);
		expect(await throttle.check("bob", undefined)).toEqual({ allowed: true });
	});

	it("locks an IP that fails across many accounts", async () => {
		for (let i = 0; i < 10; i++) await throttle.recordFailure(`user${i}`, "6.6.6.6");
		expect(await throttle.check("fresh-user", "6.6.6.6")).toMatchObject({ allowed: false, reason: "ip_locked" });
		expect(await throttle.check("fresh-user", "7.7.7.7")).toEqual({ allowed: true });
	});

	it("a successful sign-in clears the account's failures", async () => {
		for (let i = 0; i < 3; i++) await throttle.recordFailure("alice", "1.1.1.1");
		await throttle.recordSuccess("alice");
		expect(await throttle.check("alice", "1.1.1.1")).toEqual({ allowed: true });
	});

	it("caps the slow-down wait at maxDelayMs", () => {
		const d = decideLogin({ count: 5, firstAt: 0, lastAt: 0, expiresAt: 1e9 }, null, 0, { ...cfg, lockAfter: 100, maxDelayMs: 3000 });
		expect(d).toEqual({ allowed: false, retryAfterMs: 3000, reason: "account_slowed" });
	});
});
