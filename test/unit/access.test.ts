import { accessRuleOf, checkAccess } from "../../middlewares/access";
import type { AuthUser } from "../../types/auth";

const user: AuthUser = { id: "u", sid: "s", roles: ["user"] };
const operator: AuthUser = { id: "o", sid: "s", roles: ["operator"] };
const admin: AuthUser = { id: "a", sid: "s", roles: ["admin"] };

describe("access rules", () => {
	it("defaults a REST action without a rule to signed-in, and keeps internal actions internal", () => {
		expect(accessRuleOf({ rest: "GET /x" })).toBe("signedIn");
		expect(accessRuleOf({ rest: "GET /x", auth: "public" })).toBe("public");
		expect(accessRuleOf({})).toBeUndefined();
		expect(checkAccess(undefined, admin)?.code).toBe(403);
	});

	it("lets anyone call a public action", () => {
		expect(checkAccess("public", null)).toBeNull();
	});

	it("answers 401 without a user and 403 with the wrong role", () => {
		expect(checkAccess("signedIn", null)).toMatchObject({ code: 401, type: "UNAUTHORIZED" });
		expect(checkAccess(["admin", "operator"], null)).toMatchObject({ code: 401 });
		expect(checkAccess(["admin", "operator"], user)).toMatchObject({ code: 403, type: "FORBIDDEN", data: { required: ["admin", "operator"] } });
	});

	it("admits a user holding any one of the listed roles", () => {
		expect(checkAccess("signedIn", user)).toBeNull();
		expect(checkAccess(["admin", "operator"], operator)).toBeNull();
		expect(checkAccess(["admin"], admin)).toBeNull();
	});
});
