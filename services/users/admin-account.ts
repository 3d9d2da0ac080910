/**
 * The admin account's password, set or reset: the same steps for the users
 * service (over the mesh) and for `npm run admin` (on the store directly).
 */
import crypto from "node:crypto";
import type { Repository } from "../../mixins/repository";
import type { SessionDoc, UserDoc } from "../users.service";
import { hashPassword, passwordProblems } from "./passwords";

export const DEFAULT_ADMIN_USERNAME = "admin";

/** A random password that passes `passwordProblems` (16 URL-safe characters, 96 bits). */
export function generatePassword(username: string): string {
	for (;;) {
		const password = crypto.randomBytes(12).toString("base64url");
		if (!passwordProblems(password, [username]).length) return password;
	}
}

export interface AccountRepos {
	users: Repository<UserDoc>;
	sessions: Repository<SessionDoc>;
}

export type ResetOutcome =
	| { ok: true; user: UserDoc; password: string; generated: boolean; revoked: SessionDoc[] }
	| { ok: false; reason: "NO_SUCH_USER" | "WEAK_PASSWORD"; message: string };

/**
 * Gives `username` a new password (random when none is given) and revokes
 * every session of the account (its refresh tokens stop working at once; the
 * caller tells the gateways about the access tokens).
 */
export async function resetPassword(repos: AccountRepos, username: string, password?: string, now = new Date()): Promise<ResetOutcome> {
	const name = username.trim().toLowerCase();
	const user = await repos.users.findOne({ username: name });
	if (!user) return { ok: false, reason: "NO_SUCH_USER", message: `There is no account with the user name '${name}'` };
	if (password !== undefined) {
		const problems = passwordProblems(password, [name]);
		if (problems.length) return { ok: false, reason: "WEAK_PASSWORD", message: `The password ${problems.join(", ")}` };
	}
	const chosen = password ?? generatePassword(name);
	await repos.users.updateWhere({ _id: user._id }, { $set: { passwordHash: await hashPassword(chosen), updatedAt: now } });
	const open = await repos.sessions.find({ query: { userId: user._id, revokedAt: null } });
	const revoked: SessionDoc[] = [];
	for (const s of open) {
		// Compare-and-set, as every revocation: a session revoked meanwhile is not counted twice.
		if (await repos.sessions.updateWhere({ _id: s._id, revokedAt: null }, { $set: { revokedAt: now, revokeReason: "password_reset" } })) {
			revoked.push({ ...s, revokedAt: now, revokeReason: "password_reset" });
		}
	}
	return { ok: true, user, password: chosen, generated: password === undefined, revoked };
}

/** The box a password is shown in, once. */
export function passwordBox(title: string, username: string, password: string, note: string): string {
	const rule = "─".repeat(60);
	return `\n\n  ┌${rule}\n  │ ${title}: ${username} / ${password}\n  │ ${note}\n  └${rule}\n`;
}
