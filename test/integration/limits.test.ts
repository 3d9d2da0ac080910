/**
 * Rate limits and login throttling through the gateway, with limits low
 * enough to reach in a test.
 */
import { newPhone, startTestPlatform, type TestPlatform } from "../support/platform";

describe("rate limits per IP and per user", () => {
	let p: TestPlatform;
	beforeAll(async () => {
		p = await startTestPlatform({ RATE_LIMIT_IP: "1000", RATE_LIMIT_USER: "5", RATE_LIMIT_AUTH: "4" });
	});
	afterAll(() => p.stop());

	it("holds credential routes to the stricter per-IP limit, with Retry-After", async () => {
		const answers = [];
		for (let i = 0; i < 5; i++) answers.push(await p.api("POST", "/api/v1/auth/login", { login: "nobody", password: "whatever-123" }));
		expect(answers.slice(0, 4).map(a => a.status)).toEqual([401, 401, 401, 401]);
		expect(answers[4]).toMatchObject({ status: 429, body: { type: "RATE_LIMITED" } });
		expect(Number(answers[4].headers.get("retry-after"))).toBeGreaterThan(0);
		expect(answers[3].headers.get("ratelimit-remaining")).toBe("0");
	});

	it("limits a signed-in user's requests across routes", async () => {
		// Credentials budget is spent above, so sign up through the broker directly.
		const session = (await p.node.broker.call("users.register", { phone: newPhone(), password: "limit-pass-123" })) as { accessToken: string };
		const answers = [];
		for (let i = 0; i < 6; i++) answers.push(await p.api("GET", "/api/v1/me", undefined, { token: session.accessToken }));
		expect(answers.map(a => a.status)).toEqual([200, 200, 200, 200, 200, 429]);
		// The headers show the user's budget (5), not the address's (1000), once per answer.
		expect(answers[1].headers.get("ratelimit-limit")).toBe("5");
		expect(answers[1].headers.get("ratelimit-remaining")).toBe("3");
		expect(answers[5].headers.get("ratelimit-remaining")).toBe("0");
	});
});

describe("login throttling", () => {
	let p: TestPlatform;
	beforeAll(async () => {
		p = await startTestPlatform({ RATE_LIMIT_AUTH: "1000", LOGIN_SLOW_AFTER: "3", LOGIN_LOCK_AFTER: "5", LOGIN_LOCK_MS: "600000", LOGIN_MAX_DELAY_MS: "0" });
	});
	afterAll(() => p.stop());

	it("locks an account after repeated failures, even for the right password, and answers 429", async () => {
		const phone = newPhone();
		await p.api("POST", "/api/v1/auth/register", { phone, password: "throttle-pass-1" });
		for (let i = 0; i < 5; i++) {
			expect((await p.api("POST", "/api/v1/auth/login", { login: phone, password: "wrong-pass-99" })).status).toBe(401);
		}
		const locked = await p.api("POST", "/api/v1/auth/login", { login: phone, password: "throttle-pass-1" });
		expect(locked).toMatchObject({ status: 429, body: { type: "LOGIN_THROTTLED" } });
		expect(Number(locked.headers.get("retry-after"))).toBeGreaterThan(500);
		// Another account is unaffected.
		const other = newPhone();
		await p.api("POST", "/api/v1/auth/register", { phone: other, password: "throttle-pass-2" });
		expect((await p.api("POST", "/api/v1/auth/login", { login: other, password: "throttle-pass-2" })).status).toBe(200);
	});

	it("parallel attempts cannot outrun the lock: 24 at once (23 wrong, 1 right) check at most LOGIN_LOCK_AFTER passwords", async () => {
		const phone = newPhone();
		await p.api("POST", "/api/v1/auth/register", { phone, password: "throttle-pass-3" });
		const answers = await Promise.all(
			Array.from({ length: 24 }, (_, i) => p.api("POST", "/api/v1/auth/login", { login: phone, password: i === 23 ? "throttle-pass-3" : `wrong-pass-${i}` })),
		);
		const statuses = answers.map(a => a.status);
		const checked = statuses.filter(s => s === 401 || s === 200).length;
		// LOGIN_SLOW_AFTER=3 with no wait configured, LOGIN_LOCK_AFTER=5.
		expect(checked).toBe(5);
		expect(answers.filter(a => a.status === 429).every(a => a.body.type === "LOGIN_THROTTLED")).toBe(true);
	});
});
