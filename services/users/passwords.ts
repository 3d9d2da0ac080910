/**
 * Password hashing with argon2id (@node-rs/argon2: maintained, native, runs
 * off the event loop). Parameters follow OWASP's argon2id minimum
 * (19 MiB, 2 iterations, 1 lane).
 */
import { hash, verify, type Options } from "@node-rs/argon2";

/**
 * `Algorithm` is a declared const enum with no runtime object: transpiled one file at a time
 * (tsx, ts-jest) `Algorithm.Argon2id` read `undefined` and fell back to the library's default.
 * The value itself, so the choice is explicit whatever compiles it.
 */
const ARGON2ID = 2 as Options["algorithm"];
const OPTIONS: Options = { algorithm: ARGON2ID, memoryCost: 19456, timeCost: 2, parallelism: 1 };

export const PASSWORD_MIN = 8;
export const PASSWORD_MAX = 128;

export function hashPassword(password: string): Promise<string> {
	return hash(password, OPTIONS);
}

export async function verifyPassword(stored: string, password: string): Promise<boolean> {
	try {
		return await verify(stored, password);
	} catch {
		return false;
	}
}

/**
 * A hash of a random password, verified against when the login names no
 * account, so a miss costs as long as a wrong password and does not reveal
 * which accounts exist.
 */
let dummyHash: Promise<string> | undefined;
export function dummyPasswordHash(): Promise<string> {
	dummyHash ??= hashPassword(`dummy-${Math.random()}`);
	return dummyHash;
}

/** Reasons a chosen password is refused, empty when it is acceptable. */
export function passwordProblems(password: string, context: string[] = []): string[] {
	const problems: string[] = [];
	if (password.length < PASSWORD_MIN) problems.push(`must be at least ${PASSWORD_MIN} characters`);
	if (password.length > PASSWORD_MAX) problems.push(`must be at most ${PASSWORD_MAX} characters`);
	if (/^(.)\1*$/.test(password)) problems.push("must not repeat one character");
	const lower = password.toLowerCase();
	if (context.some(c => c && c.length >= 4 && lower.includes(c.toLowerCase()))) {
		problems.push("must not contain your phone number or user name");
	}
	return problems;
}
