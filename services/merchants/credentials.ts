/**
 * Cabinet MQTT credentials: the username is the cabinet id, the password 256
 * random bits shown once. Only its SHA-256 is stored: the secret has full
 * entropy, so a slow password hash would add nothing but latency to every
 * MQTT connect, and the check runs in constant time.
 */
import crypto from "node:crypto";

export interface CabinetSecret {
	password: string;
	hash: string;
}

export function newCabinetSecret(): CabinetSecret {
	const password = crypto.randomBytes(32).toString("base64url");
	return { password, hash: hashCabinetSecret(password) };
}

export function hashCabinetSecret(password: string): string {
	return crypto.createHash("sha256").update(password, "utf8").digest("hex");
}

export function verifyCabinetSecret(password: string, storedHash: string): boolean {
	const given = Buffer.from(hashCabinetSecret(password), "hex");
	const stored = Buffer.from(storedHash, "hex");
	return given.length === stored.length && crypto.timingSafeEqual(given, stored);
}
