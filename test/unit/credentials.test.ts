import { deriveCabinetSecret, newCabinetSecret, verifyCabinetSecret } from "../../domain/cabinet-secrets";

describe("cabinet credentials", () => {
	it("derive a fresh secret per registration that the platform can produce again from the nonce", () => {
		const a = newCabinetSecret("key-1", "cab_A");
		const b = newCabinetSecret("key-1", "cab_A");
		expect(a.password).not.toBe(b.password); // rotation gives a new secret
		expect(deriveCabinetSecret("key-1", "cab_A", a.nonce)).toBe(a.password);
		expect(deriveCabinetSecret("key-2", "cab_A", a.nonce)).not.toBe(a.password);
		expect(deriveCabinetSecret("key-1", "cab_B", a.nonce)).not.toBe(a.password);
		expect(a.password).toMatch(/^[A-Za-z0-9_-]{43}$/); // 256 bits
	});

	it("checks a login against the stored hash only", () => {
		const s = newCabinetSecret("key-1", "cab_A");
		expect(verifyCabinetSecret(s.password, s.hash)).toBe(true);
		expect(verifyCabinetSecret(s.password + "x", s.hash)).toBe(false);
		expect(verifyCabinetSecret(s.password, "00")).toBe(false);
	});
});
