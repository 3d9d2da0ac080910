import jwt from "jsonwebtoken";
import { TokenService } from "../../lib/access-tokens";

const cfg = { jwtSecret: "unit-test-secret-unit-test-secret-123", accessTtlSec: 900, refreshTtlSec: 7 * 86400, issuer: "locker-platform" };
const user = { id: "usr_1", sid: "ses_1", roles: ["merchant" as const], merchantId: "mer_9" };

describe("TokenService", () => {
	const tokens = new TokenService(cfg);
	afterEach(() => jest.useRealTimers());

	it("issues an access token that verifies back to the same user", () => {
		const { token, expiresIn } = tokens.issueAccess(user);
		expect(expiresIn).toBe(900);
		const v = tokens.verifyAccess(token);
		expect(v.ok).toBe(true);
		if (!v.ok) return;
		expect(TokenService.userOf(v.claims)).toEqual(user);
		expect(v.claims.exp - v.claims.iat).toBe(900);
	});

	it("reports an expired access token as expired, not merely invalid", () => {
		jest.useFakeTimers({ now: new Date("2026-01-01T00:00:00Z") });
		const { token } = tokens.issueAccess(user);
		jest.setSystemTime(new Date("2026-01-01T00:14:59Z"));
		expect(tokens.verifyAccess(token).ok).toBe(true);
		jest.setSystemTime(new Date("2026-01-01T00:15:01Z"));
		expect(tokens.verifyAccess(token)).toEqual({ ok: false, error: "expired" });
	});

	it("refresh tokens live 7 days and carry session and generation", () => {
		jest.useFakeTimers({ now: new Date("2026-01-01T00:00:00Z") });
		const token = tokens.issueRefresh("usr_1", "ses_1", 3);
		jest.setSystemTime(new Date("2026-01-07T23:59:00Z"));
		const v = tokens.verifyRefresh(token);
		expect(v.ok && v.claims).toMatchObject({ sub: "usr_1", sid: "ses_1", gen: 3, typ: "refresh" });
		jest.setSystemTime(new Date("2026-01-08T00:00:01Z"));
		expect(tokens.verifyRefresh(token)).toEqual({ ok: false, error: "expired" });
	});

	it("verifies a token's signature once, then answers from its bounded cache", () => {
		const small = new TokenService(cfg, 2);
		const [a, b, c] = [1, 2, 3].map(i => small.issueAccess({ ...user, sid: `ses_${i}` }).token);
		const verify = jest.spyOn(jwt, "verify");
		try {
			for (const t of [a, a, b, b]) expect(small.verifyAccess(t).ok).toBe(true);
			expect(verify).toHaveBeenCalledTimes(2);
			expect(small.verifyAccess(c).ok).toBe(true); // evicts a, the oldest
			expect(small.verifyAccess(a).ok).toBe(true);
			expect(verify).toHaveBeenCalledTimes(4);
		} finally {
			verify.mockRestore();
		}
	});

	it("never accepts one kind of token as the other", () => {
		const access = tokens.issueAccess(user).token;
		const refresh = tokens.issueRefresh("usr_1", "ses_1", 1);
		expect(tokens.verifyRefresh(access)).toEqual({ ok: false, error: "invalid" });
		expect(tokens.verifyAccess(refresh)).toEqual({ ok: false, error: "invalid" });
	});

	it("rejects tokens signed with another secret, tampered with, or unsigned", () => {
		const other = new TokenService({ ...cfg, jwtSecret: "another-secret-another-secret-12345" });
		expect(tokens.verifyAccess(other.issueAccess(user).token).ok).toBe(false);

		const [h, p, s] = tokens.issueAccess(user).token.split(".");
		const claims = JSON.parse(Buffer.from(p, "base64url").toString());
		claims.roles = ["admin"];
		const forged = [h, Buffer.from(JSON.stringify(claims)).toString("base64url"), s].join(".");
		expect(tokens.verifyAccess(forged)).toEqual({ ok: false, error: "invalid" });

		const unsigned = jwt.sign({ sub: "usr_1", sid: "s", roles: ["admin"], typ: "access", iss: cfg.issuer }, "", { algorithm: "none" as any });
		expect(tokens.verifyAccess(unsigned).ok).toBe(false);
		expect(tokens.verifyAccess("garbage").ok).toBe(false);
	});

	it("rejects a token from another issuer", () => {
		const foreign = jwt.sign({ sub: "usr_1", sid: "s", roles: ["user"], typ: "access" }, cfg.jwtSecret, { issuer: "someone-else", expiresIn: 60 });
		expect(tokens.verifyAccess(foreign).ok).toBe(false);
	});
});
