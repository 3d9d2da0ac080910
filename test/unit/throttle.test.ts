import { createLimiterFactory } from "../../lib/rate-limits";
import { LoginThrottle, paceAfter } from "../../services/users/throttle";

const cfg = { slowAfter: 3, lockAfter: 6, ipLockAfter: 10, lockMs: 15 * 60_000, maxDelayMs: 60_000 };
const noPace = { ...cfg, maxDelayMs: 0 };

describe("login throttling (attempts reserved before the password is checked)", () => {
	beforeEach(() => jest.useFakeTimers({ now: 1_000_000 }));
	afterEach(() => jest.useRealTimers());
	const throttle = (c = cfg) => new LoginThrottle(createLimiterFactory({ namespace: "t" }, "test"), c);

	it("allows attempts below the slow-down threshold", async () => {
		const t = throttle();
		expect(await t.reserve("alice", "1.1.1.1")).toEqual({ allowed: true });
		expect(await t.reserve("alice", "1.1.1.1")).toEqual({ allowed: true });
	});

	it("slows down: past the threshold each attempt must wait twice as long as the one before", async () => {
		const t = throttle();
		for (let i = 0; i < 3; i++) expect((await t.reserve("alice", "1.1.1.1")).allowed).toBe(true);
		expect(await t.reserve("alice", "1.1.1.1")).toMatchObject({ allowed: false, reason: "account_slowed", retryAfterMs: 1000 });
		jest.advanceTimersByTime(1000);
		expect((await t.reserve("alice", "1.1.1.1")).allowed).toBe(true);
		expect(await t.reserve("alice", "1.1.1.1")).toMatchObject({ allowed: false, reason: "account_slowed", retryAfterMs: 2000 });
	});

	it("locks the account after lockAfter attempts, for lockMs, whoever asks", async () => {
		const t = throttle(noPace);
		for (let i = 0; i < 6; i++) expect((await t.reserve("alice", `10.0.0.${i}`)).allowed).toBe(true);
		const locked = await t.reserve("alice", "9.9.9.9");
		expect(locked).toMatchObject({ allowed: false, reason: "account_locked" });
		expect((locked as { retryAfterMs: number }).retryAfterMs).toBeGreaterThan(cfg.lockMs - 1000);
		jest.advanceTimersByTime(cfg.lockMs - 2000);
		expect((await t.reserve("alice", "9.9.9.9")).allowed).toBe(false);
		jest.advanceTimersByTime(3000);
		expect(await t.reserve("alice", "9.9.9.9")).toEqual({ allowed: true });
	});

	it("parallel attempts cannot pass one check together: at most lockAfter are let through", async () => {
		const t = throttle(noPace);
		const decisions = await Promise.all(Array.from({ length: 24 }, () => t.reserve("alice", undefined)));
		expect(decisions.filter(d => d.allowed)).toHaveLength(cfg.lockAfter);
		expect(decisions.filter(d => !d.allowed).every(d => !d.allowed && d.reason === "account_locked")).toBe(true);
	});

	it("with the slow-down on, a parallel burst gets only the attempts before the first pace slot", async () => {
		const t = throttle();
		const decisions = await Promise.all(Array.from({ length: 24 }, () => t.reserve("alice", undefined)));
		expect(decisions.filter(d => d.allowed)).toHaveLength(cfg.slowAfter);
	});

	it("counts per account: another account is not affected", async () => {
		const t = throttle(noPace);
		for (let i = 0; i < 7; i++) await t.reserve("alice", undefined);
		expect(await t.reserve("bob", undefined)).toEqual({ allowed: true });
	});

	it("locks an IP that tries many accounts", async () => {
		const t = throttle(noPace);
		for (let i = 0; i < 10; i++) expect((await t.reserve(`user${i}`, "6.6.6.6")).allowed).toBe(true);
		expect(await t.reserve("fresh-user", "6.6.6.6")).toMatchObject({ allowed: false, reason: "ip_locked" });
		expect(await t.reserve("fresh-user", "7.7.7.7")).toEqual({ allowed: true });
	});

	it("a successful sign-in clears the account and gives the IP its attempt back", async () => {
		const t = throttle(noPace);
		for (let i = 0; i < 5; i++) await t.reserve("alice", "1.1.1.1");
		await t.succeeded("alice", "1.1.1.1");
		// Without the clearing, the lock would come after one more.
		for (let i = 0; i < 6; i++) expect((await t.reserve("alice", "2.2.2.2")).allowed).toBe(true);
		// 1.1.1.1 reserved 5 and got 1 back: 6 more fit before its lock at 10.
		for (let i = 0; i < 6; i++) expect((await t.reserve(`user${i}`, "1.1.1.1")).allowed).toBe(true);
		expect(await t.reserve("bob", "1.1.1.1")).toMatchObject({ allowed: false, reason: "ip_locked" });
	});

	it("caps the slow-down wait at maxDelayMs", () => {
		expect(paceAfter(2, cfg)).toBe(0);
		expect(paceAfter(3, cfg)).toBe(1000);
		expect(paceAfter(5, cfg)).toBe(4000);
		expect(paceAfter(20, { ...cfg, maxDelayMs: 3000 })).toBe(3000);
	});
});
