/**
 * Access rules declared on actions (`auth`), checked in one function used by
 * both the gateway (before it forwards a call) and the access middleware
 * (on the node that runs the action), so they can never disagree.
 */
import type { AccessRule, AuthUser } from "../types/auth";
import { ErrorTypes, forbidden, unauthorized } from "../types/errors";
import type { Errors } from "moleculer";

interface ActionLike {
	auth?: AccessRule;
	rest?: unknown;
}

/** The rule that applies to an action; `undefined` = internal action, never reachable from outside. */
export function accessRuleOf(action: ActionLike): AccessRule | undefined {
	if (action.auth !== undefined) return action.auth;
	return action.rest ? "signedIn" : undefined;
}

/** `null` when `user` may call an action guarded by `rule`, else the 401/403 to answer with. */
export function checkAccess(rule: AccessRule | undefined, user: AuthUser | null | undefined): Errors.MoleculerError | null {
	if (rule === undefined) return forbidden("This action is internal");
	if (rule === "public") return null;
	if (!user) return unauthorized("Sign in first: missing or invalid access token", ErrorTypes.UNAUTHORIZED);
	if (rule === "signedIn") return null;
	if (user.roles.some(r => rule.includes(r))) return null;
	return forbidden(`Requires role ${rule.join(" or ")}`, { required: rule });
}
