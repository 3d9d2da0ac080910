/**
 * The auth routes of API.md through the real gateway (HTTP on a free port),
 * with the whole platform in this process.
 */
import { ADMIN, newPhone, startTestPlatform, type TestPlatform } from "../support/platform";

let p: TestPlatform;
beforeAll(async () => {
	p = await startTestPlatform({ RATE_LIMIT_AUTH: "100000", RATE_LIMIT_IP: "100000" });
});
afterAll(() => p.stop());

async function register(phone = newPhone(), password = "good-passphrase-1") {
	const r = await p.api("POST", "/api/v1/auth/register", { phone, password });
	expect(r.status).toBe(201);
	return { phone, password, ...r.body };
}

async function userCount(): Promise<number> {
	const users = (p.node.broker.getLocalService("users") as any).repos.users;
	return users.count({});
}

describe("register → login → me → refresh → logout", () => {
	it("walks the whole session life", async () => {
		const phone = newPhone();
		const reg = await p.api("POST", "/api/v1/auth/register", { phone, password: "good-passphrase-1", name: "小王" });
		expect(reg.status).toBe(201);
		expect(reg.body).toMatchObject({ user: { phone: `+86${phone}`, name: "小王", roles: ["user"] }, expiresIn: 900 });
		expect(reg.body.user.passwordHash).toBeUndefined();

		const login = await p.api("POST", "/api/v1/auth/login", { login: phone, password: "good-passphrase-1" });
		expect(login.status).toBe(200);
		const { accessToken, refreshToken } = login.body;

		const me = await p.api("GET", "/api/v1/me", undefined, { token: accessToken });
		expect(me.status).toBe(200);
		expect(me.body).toEqual({ id: reg.body.user.id, phone: `+86${phone}`, name: "小王", roles: ["user"] });

		const refreshed = await p.api("POST", "/api/v1/auth/refresh", { refreshToken });
		expect(refreshed.status).toBe(200);
		expect(refreshed.body.refreshToken).not.toBe(refreshToken);
		expect((await p.api("GET", "/api/v1/me", undefined, { token: refreshed.body.accessToken })).status).toBe(200);

		const out = await p.api("POST", "/api/v1/auth/logout", undefined, { token: refreshed.body.accessToken });
		expect(out.status).toBe(204);
		// The session is gone: its access token and its refresh token both stop working.
		expect(await p.api("GET", "/api/v1/me", undefined, { token: refreshed.body.accessToken })).toMatchObject({ status: 401, body: { type: "SESSION_REVOKED" } });
		expect(await p.api("POST", "/api/v1/auth/refresh", { refreshToken: refreshed.body.refreshToken })).toMatchObject({ status: 401, body: { type: "SESSION_REVOKED" } });
	});

	it("logs in by user name too, case-insensitively", async () => {
		const r = await p.api("POST", "/api/v1/auth/login", { login: ADMIN.username.toUpperCase(), password: ADMIN.password });
		expect(r.status).toBe(200);
		expect(r.body.user).toMatchObject({ username: "admin", roles: ["admin"] });
	});

	it("answers a wrong password and an unknown account alike", async () => {
		const u = await register();
		const wrong = await p.api("POST", "/api/v1/auth/login", { login: u.phone, password: "not-the-password" });
		const unknown = await p.api("POST", "/api/v1/auth/login", { login: newPhone(), password: "not-the-password" });
		expect(wrong).toMatchObject({ status: 401, body: { type: "INVALID_CREDENTIALS", message: "Wrong login or password" } });
		expect(unknown).toMatchObject({ status: 401, body: { type: "INVALID_CREDENTIALS", message: "Wrong login or password" } });
	});
});

describe("refresh rotation and reuse detection", () => {
	it("a spent refresh token revokes the whole session", async () => {
		const u = await register();
		const first = await p.api("POST", "/api/v1/auth/refresh", { refreshToken: u.refreshToken });
		expect(first.status).toBe(200);

		// The old token is presented again (stolen copy): reuse → session revoked.
		const replay = await p.api("POST", "/api/v1/auth/refresh", { refreshToken: u.refreshToken });
		expect(replay).toMatchObject({ status: 401, body: { type: "REFRESH_TOKEN_REUSED" } });

		// The legitimate holder's newer tokens die with the session.
		expect((await p.api("POST", "/api/v1/auth/refresh", { refreshToken: first.body.refreshToken })).body.type).toBe("SESSION_REVOKED");
		expect((await p.api("GET", "/api/v1/me", undefined, { token: first.body.accessToken })).body.type).toBe("SESSION_REVOKED");
	});

	it("of two concurrent refreshes with one token exactly one wins", async () => {
		const u = await register();
		const answers = await Promise.all(Array.from({ length: 8 }, () => p.api("POST", "/api/v1/auth/refresh", { refreshToken: u.refreshToken })));
		expect(answers.filter(a => a.status === 200)).toHaveLength(1);
		expect(answers.filter(a => a.status === 401)).toHaveLength(7);
	});

	it("other sessions of the same user survive", async () => {
		const u = await register();
		const second = await p.api("POST", "/api/v1/auth/login", { login: u.phone, password: u.password });
		await p.api("POST", "/api/v1/auth/logout", undefined, { token: u.accessToken });
		expect((await p.api("GET", "/api/v1/me", undefined, { token: second.body.accessToken })).status).toBe(200);
	});

	it("refuses an access token where a refresh token is expected", async () => {
		const u = await register();
		expect(await p.api("POST", "/api/v1/auth/refresh", { refreshToken: u.accessToken })).toMatchObject({ status: 401, body: { type: "INVALID_TOKEN" } });
	});
});

describe("bad input gets a clear error and changes nothing", () => {
	const cases: [string, unknown, number, string][] = [
		["missing password", { phone: "13912345678" }, 422, "VALIDATION_ERROR"],
		["bad phone", { phone: "12345", password: "good-passphrase-1" }, 422, "VALIDATION_ERROR"],
		["short password", { phone: "13912345678", password: "short" }, 422, "VALIDATION_ERROR"],
		["password = phone", { phone: "13912345678", password: "13912345678" }, 422, "VALIDATION_ERROR"],
		["unknown field", { phone: "13912345678", password: "good-passphrase-1", roles: ["admin"] }, 422, "VALIDATION_ERROR"],
		["wrong type", { phone: 13912345678, password: "good-passphrase-1" }, 422, "VALIDATION_ERROR"],
	];
	it.each(cases)("register with %s → %i %s, no user stored", async (_name, body, status, type) => {
		const before = await userCount();
		const r = await p.api("POST", "/api/v1/auth/register", body);
		expect(r.status).toBe(status);
		expect(r.body).toMatchObject({ code: status, type });
		expect(Array.isArray(r.body.data)).toBe(true);
		expect(r.body.data.length).toBeGreaterThan(0);
		expect(await userCount()).toBe(before);
	});

	it("lists the offending fields", async () => {
		const r = await p.api("POST", "/api/v1/auth/register", { phone: "13912345678", password: "good-passphrase-1", isAdmin: true });
		expect(r.body.data).toEqual([expect.objectContaining({ field: "isAdmin" })]);
	});

	it("a duplicate phone is a 409 and keeps one account", async () => {
		const u = await register();
		const before = await userCount();
		expect(await p.api("POST", "/api/v1/auth/register", { phone: `+86${u.phone}`, password: "other-passphrase-2" })).toMatchObject({ status: 409, body: { type: "PHONE_TAKEN" } });
		expect(await userCount()).toBe(before);
	});

	it("malformed JSON → 400, oversized body → 413", async () => {
		expect(await p.api("POST", "/api/v1/auth/login", undefined, { raw: "{not json" })).toMatchObject({ status: 400, body: { type: "INVALID_REQUEST_BODY" } });
		const big = JSON.stringify({ login: "x".repeat(200_000), password: "y" });
		expect(await p.api("POST", "/api/v1/auth/login", undefined, { raw: big })).toMatchObject({ status: 413, body: { type: "PAYLOAD_TOO_LARGE" } });
	});

	it("a malformed Authorization header is a 401", async () => {
		expect(await p.api("GET", "/api/v1/me", undefined, { headers: { authorization: "Basic abc" } })).toMatchObject({ status: 401, body: { type: "INVALID_TOKEN" } });
		expect(await p.api("GET", "/api/v1/me", undefined, { token: "abc.def.ghi" })).toMatchObject({ status: 401, body: { type: "INVALID_TOKEN" } });
	});

	it("an unknown route is a 404 in the error shape", async () => {
		expect(await p.api("GET", "/api/v1/nothing-here")).toMatchObject({ status: 404, body: { code: 404, type: "NOT_FOUND" } });
	});
});

describe("staff accounts and role checks", () => {
	let adminToken: string;
	beforeAll(async () => {
		adminToken = (await p.api("POST", "/api/v1/auth/login", { login: ADMIN.username, password: ADMIN.password })).body.accessToken;
	});

	it("an admin creates an operator, who can then sign in", async () => {
		const r = await p.api("POST", "/api/v1/admin/users", { username: "Ops.Li", password: "operator-pass-1", roles: ["operator"] }, { token: adminToken });
		expect(r.status).toBe(201);
		expect(r.body).toMatchObject({ username: "ops.li", roles: ["operator"] });
		const login = await p.api("POST", "/api/v1/auth/login", { login: "ops.li", password: "operator-pass-1" });
		expect(login.body.user.roles).toEqual(["operator"]);
	});

	it("a user or an operator may not create staff (403), an anonymous caller gets 401", async () => {
		const u = await register();
		const body = { username: "sneaky", password: "sneaky-pass-12", roles: ["admin"] };
		expect(await p.api("POST", "/api/v1/admin/users", body, { token: u.accessToken })).toMatchObject({ status: 403, body: { type: "FORBIDDEN" } });
		expect(await p.api("POST", "/api/v1/admin/users", body)).toMatchObject({ status: 401, body: { type: "UNAUTHORIZED" } });
		expect((await p.api("POST", "/api/v1/auth/login", { login: "sneaky", password: "sneaky-pass-12" })).status).toBe(401);
	});

	it("the access rule also holds when the action is called as if from the gateway", async () => {
		const u = await register();
		const me = (await p.api("GET", "/api/v1/me", undefined, { token: u.accessToken })).body;
		const ctxMeta = { viaGateway: true, user: { id: me.id, sid: "x", roles: ["user"] } };
		const broker = p.node.broker;
		await expect(
			broker.call("users.createStaff", { username: "viaroute", password: "viaroute-pass-1", roles: ["admin"] }, { meta: ctxMeta, parentCtx: undefined, caller: "api" } as any),
		).rejects.toMatchObject({ code: 403 });
	});

	it("merchant accounts need a merchantId and nothing is stored otherwise", async () => {
		const before = await userCount();
		const r = await p.api("POST", "/api/v1/admin/users", { username: "shop1", password: "merchant-pass-1", roles: ["merchant"] }, { token: adminToken });
		expect(r).toMatchObject({ status: 422, body: { type: "VALIDATION_ERROR", data: [expect.objectContaining({ field: "merchantId" })] } });
		expect(await userCount()).toBe(before);
		const unknown = await p.api("POST", "/api/v1/admin/users", { username: "shop1", password: "merchant-pass-1", roles: ["merchant"], merchantId: "mer_nope" }, { token: adminToken });
		expect(unknown).toMatchObject({ status: 422, body: { data: [expect.objectContaining({ field: "merchantId" })] } });
		expect(await userCount()).toBe(before);
		const merchant = await p.api("POST", "/api/v1/merchants", { name: "Shop", contactPhone: "13800138000", commissionRate: 0.2 }, { token: adminToken });
		const merchantId = merchant.body.id;
		const ok = await p.api("POST", "/api/v1/admin/users", { username: "shop1", password: "merchant-pass-1", roles: ["merchant"], merchantId }, { token: adminToken });
		expect(ok.body).toMatchObject({ roles: ["merchant"], merchantId });
		const login = await p.api("POST", "/api/v1/auth/login", { login: "shop1", password: "merchant-pass-1" });
		expect((await p.api("GET", "/api/v1/me", undefined, { token: login.body.accessToken })).body).toMatchObject({ merchantId, roles: ["merchant"] });
	});

	it("a taken user name is a 409", async () => {
		const r = await p.api("POST", "/api/v1/admin/users", { username: "admin", password: "another-pass-1", roles: ["admin"] }, { token: adminToken });
		expect(r).toMatchObject({ status: 409, body: { type: "USERNAME_TAKEN" } });
	});
});

describe("operations endpoints", () => {
	it("serves health, readiness, metrics and an OpenAPI document of every route", async () => {
		expect(await p.api("GET", "/api/v1/health")).toMatchObject({ status: 200, body: { status: "ok" } });
		expect(await p.api("GET", "/api/v1/ready")).toMatchObject({ status: 200, body: { ready: true } });
		const metrics = await p.api("GET", "/metrics");
		expect(metrics.status).toBe(200);
		expect(String(metrics.body)).toContain("moleculer_request_total");
		const doc = (await p.api("GET", "/api/openapi.json")).body;
		expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(["/api/v1/auth/register", "/api/v1/auth/login", "/api/v1/auth/refresh", "/api/v1/auth/logout", "/api/v1/me", "/api/v1/admin/users"]));
	});

	it("propagates the request id and sets security and CORS headers", async () => {
		const r = await p.api("GET", "/api/v1/health", undefined, { headers: { "x-request-id": "trace-abc-123", origin: "https://app.example" } });
		expect(r.headers.get("x-request-id")).toBe("trace-abc-123");
		expect(r.headers.get("x-content-type-options")).toBe("nosniff");
		expect(r.headers.get("access-control-allow-origin")).toBeTruthy();
		const err = await p.api("GET", "/api/v1/me", undefined, { headers: { "x-request-id": "trace-err-1" } });
		expect(err.headers.get("x-request-id")).toBe("trace-err-1");
	});

	it("puts the request id into ctx.meta of the called action", async () => {
		const ep = (p.node.broker.registry as any).getActionEndpoints("users.me").endpoints.find((e: any) => e.local);
		const original = ep.action.handler;
		const seen: unknown[] = [];
		ep.action.handler = (ctx: any) => {
			seen.push({ meta: ctx.meta.requestId, ctx: ctx.requestID, ip: ctx.meta.clientIp });
			return original(ctx);
		};
		try {
			const u = await register();
			const r = await p.api("GET", "/api/v1/me", undefined, { token: u.accessToken, headers: { "x-request-id": "meta-req-7" } });
			expect(r.status).toBe(200);
		} finally {
			ep.action.handler = original;
		}
		expect(seen).toEqual([{ meta: "meta-req-7", ctx: "meta-req-7", ip: "127.0.0.1" }]);
	});
});
