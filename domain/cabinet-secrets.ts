/**
 * Cabinet MQTT credentials: the username is the cabinet id, the password a
 * per-cabinet secret shown once. The secret also signs the cabinet's commands
 * (PROTOCOL.md), so the platform must be able to produce it again — but it is
 * never stored: it is HMAC(CABINET_SECRET_KEY, cabinetId | nonce) with a
 * random nonce per registration or rotation. The catalog keeps the nonce
 * (useless without the key) and the secret's SHA-256 for the login check,
 * which runs in constant time. Door actors derive the secret with the same
 * key, so it never travels over the mesh.
 */
import crypto from "node:crypto";

export interface CabinetSecret {
	password: string;
	hash: string;
	nonce: string;
}

export function deriveCabinetSecret(masterKey: string, cabinetId: string, nonce: string): string {
	return crypto.createHmac("sha256", masterKey).update(`cabinet-secret|${cabinetId}|${nonce}`, "utf8").digest("base64url");
}

export function newCabinetSecret(masterKey: string, cabinetId: string): CabinetSecret {
	const nonce = crypto.randomBytes(16).toString("base64url");
	const password = deriveCabinetSecret(masterKey, cabinetId, nonce);
	return { password, hash: hashCabinetSecret(password), nonce };
}

export function hashCabinetSecret(password: string): string {
	return crypto.createHash("sha256").update(password, "utf8").digest("hex");
}

export function verifyCabinetSecret(password: string, storedHash: string): boolean {
	const given = Buffer.from(hashCabinetSecret(password), "hex");
	const stored = Buffer.from(storedHash, "hex");
	return given.length === stored.length && crypto.timingSafeEqual(given, stored);
}
