import { normalizePhone, looksLikePhone } from "../../services/users/phone";
import { hashPassword, passwordProblems, verifyPassword } from "../../services/users/passwords";

describe("phone numbers", () => {
	it.each([
		["13800138000", "+8613800138000"],
		["138 0013 8000", "+8613800138000"],
		["+86 138-0013-8000", "+8613800138000"],
		["008613800138000", "+8613800138000"],
		["+14155552671", "+14155552671"],
	])("normalises %s", (input, out) => expect(normalizePhone(input)).toBe(out));

	it.each(["12800138000", "1380013800", "+8612345", "abc", "", "+86123456789012", "+0123456789"])("rejects %s", input =>
		expect(normalizePhone(input)).toBeNull());

	it("tells phone-like logins from user names", () => {
		expect(looksLikePhone("+86 138")).toBe(true);
		expect(looksLikePhone("admin")).toBe(false);
	});
});

describe("passwords", () => {
	it("hashes with argon2id and verifies only the right password", async () => {
		const h = await hashPassword("correct horse battery");
		expect(h.startsWith("$argon2id$")).toBe(true);
		expect(await verifyPassword(h, "correct horse battery")).toBe(true);
		expect(await verifyPassword(h, "correct horse batterY")).toBe(false);
		expect(await verifyPassword("not-a-hash", "x")).toBe(false);
	});

	it("refuses short, repetitive and self-referencing passwords", () => {
		expect(passwordProblems("short")).toContain("must be at least 8 characters");
		expect(passwordProblems("aaaaaaaaaa")).toContain("must not repeat one character");
		expect(passwordProblems("x13800138000y", ["13800138000"])).toContain("must not contain your phone number or user name");
		expect(passwordProblems("a-good-passphrase")).toEqual([]);
	});
});
