/**
 * users: accounts and sessions.
 *
 * A session is one signed-in device. Its refresh token carries the session's
 * generation; refreshing moves the session to the next generation with a
 * compare-and-set, so a token can be used once, and presenting a spent one
 * revokes the session (it was copied). Access tokens are stateless; when a
 * session is revoked the gateways are told (`users.session.revoked`) and
 * refuse its access tokens until they expire.
 */
import type { Context, ServiceSchema, ServiceSettingSchema } from "moleculer";
import type { Config } from "../config";
import { createDbMixin, type EntityDefinition } from "../mixins/db.mixin";
import { Repository } from "../mixins/repository";
import { createLimiterFactory } from "../lib/rate-limits";
import { ROLES, type AppMeta, type AuthUser, type Role } from "../types/auth";
import { created } from "../lib/created";
import type { SessionRevokedEvent } from "../types/events";
import { ErrorTypes, conflict, invalid, notFound, rateLimited, unauthorized } from "../types/errors";
import { TokenService } from "../lib/access-tokens";
import { dummyPasswordHash, hashPassword, passwordProblems, PASSWORD_MAX, verifyPassword } from "./users/passwords";
import { DEFAULT_ADMIN_USERNAME, generatePassword, passwordBox, resetPassword } from "./users/admin-account";
import { looksLikePhone, normalizePhone } from "./users/phone";
import { LoginThrottle } from "./users/throttle";

export interface UserDoc {
	_id: string;
	phone?: string;
	username?: string;
	name: string;
	passwordHash: string;
	roles: Role[];
	merchantId?: string;
	createdAt: Date;
	updatedAt: Date;
}

export interface SessionDoc {
	_id: string;
	userId: string;
	/** Generation of the one refresh token that is valid now. */
	gen: number;
	createdAt: Date;
	refreshedAt: Date;
	expiresAt: Date;
	revokedAt: Date | null;
	revokeReason?: string;
	ip?: string;
	userAgent?: string;
}

/** A user as the API shows it. */
export interface PublicUser {
	id: string;
	phone?: string;
	username?: string;
	name: string;
	roles: Role[];
	merchantId?: string;
	createdAt: string;
}

export interface AuthResult {
	user: PublicUser;
	accessToken: string;
	refreshToken: string;
	expiresIn: number;
}

export interface RegisterParams { phone: string; password: string; name?: string }
export interface LoginParams { login: string; password: string }
export interface RefreshParams { refreshToken: string }
export interface AdminBootstrap {
	created: boolean;
	username: string;
	/** Set when the password was generated (and printed). */
	generatedPassword?: string;
}

export interface ResetPasswordParams { username: string; password?: string }
export interface ResetPasswordResult { userId: string; username: string; revokedSessions: number; password?: string }

export interface CreateStaffParams { username: string; password: string; roles: Role[]; merchantId?: string; name?: string }


export const UserEntity: EntityDefinition = {
	collection: "users",
	idPrefix: "usr",
	fields: {
		phone: "string", username: "string", name: "string", passwordHash: "string",
		roles: "array", merchantId: "string", createdAt: "date", updatedAt: "date",
	},
	indexes: [
		{ fields: { phone: 1 }, unique: true, sparse: true },
		{ fields: { username: 1 }, unique: true, sparse: true },
		{ fields: { merchantId: 1 }, sparse: true },
	],
};

export const SessionEntity: EntityDefinition = {
	collection: "sessions",
	idPrefix: "ses",
	fields: {
		userId: "string", gen: "number", createdAt: "date", refreshedAt: "date", expiresAt: "date",
		revokedAt: "date", revokeReason: "string", ip: "string", userAgent: "string",
	},
	indexes: [{ fields: { userId: 1 } }, { fields: { revokedAt: 1 } }],
};

const USERNAME = /^[a-z][a-z0-9_.-]{2,31}$/;

export function toPublicUser(u: UserDoc): PublicUser {
	const out: PublicUser = { id: u._id, name: u.name, roles: u.roles, createdAt: new Date(u.createdAt).toISOString() };
	if (u.phone) out.phone = u.phone;
	if (u.username) out.username = u.username;
	if (u.merchantId) out.merchantId = u.merchantId;
	return out;
}

interface Settings extends ServiceSettingSchema {
	rest: string;
}

interface Methods {
	startSession(user: UserDoc, ctx: Context<unknown, AppMeta>): Promise<AuthResult>;
	issueFor(user: UserDoc, sid: string, gen: number): AuthResult;
	revokeSession(sid: string, userId: string, reason: string): Promise<boolean>;
	/** Called by startNode once the node started, so a failed start leaves no admin whose password nobody saw. */
	bootstrapAdmin(): Promise<AdminBootstrap>;
	createAdminIfNone(): Promise<AdminBootstrap>;
}

interface Vars {
	repos: { users: Repository<UserDoc>; sessions: Repository<SessionDoc> };
	tokens: TokenService;
	throttle: LoginThrottle;
	closeCounters: () => Promise<unknown>;
	adminBootstrapped: boolean;
}

type This = Vars & Methods & { broker: Context["broker"]; logger: any };

export function createUsersService(config: Config, opts: { dataDir?: string | null } = {}): ServiceSchema<Settings, Methods, Vars> {
	const dataDir = opts.dataDir === undefined ? config.dataDir : opts.dataDir;
	/** An account by id, public fields only: for other services (`get`) and for admins (`getAccount`). */
	const userById = {
		params: { id: { type: "string", min: 1, max: 64 } },
		async handler(this: This, ctx: Context<{ id: string }>): Promise<PublicUser> {
			const user = await this.repos.users.findById(ctx.params.id);
			if (!user) throw notFound("User", { id: ctx.params.id });
			return toPublicUser(user);
		},
	} as const;

	return {
		name: "users",
		mixins: [createDbMixin({ users: UserEntity, sessions: SessionEntity }, { mongoUri: config.mongoUri, dataDir })],
		settings: { rest: "" },

		actions: {
			register: {
				rest: "POST /auth/register",
				auth: "public",
				rateLimit: "credentials",
				summary: "Create a user account and sign in",
				params: {
					phone: { type: "string", min: 5, max: 32 },
					password: { type: "string", min: 1, max: PASSWORD_MAX },
					name: { type: "string", min: 1, max: 50, trim: true, optional: true },
				},
				async handler(this: This, ctx: Context<RegisterParams, AppMeta>): Promise<AuthResult> {
					const phone = normalizePhone(ctx.params.phone);
					const fields: { field: string; message: string }[] = [];
					if (!phone) fields.push({ field: "phone", message: "phone must be a mainland China mobile number or an international number starting with +" });
					for (const p of passwordProblems(ctx.params.password, [ctx.params.phone.replace(/\D/g, "")])) {
						fields.push({ field: "password", message: `password ${p}` });
					}
					if (fields.length) throw invalid(fields);

					const now = new Date();
					let user: UserDoc;
					try {
						user = await this.repos.users.insert({
							phone: phone!,
							name: ctx.params.name ?? `用户${phone!.slice(-4)}`,
							passwordHash: await hashPassword(ctx.params.password),
							roles: ["user"],
							createdAt: now,
							updatedAt: now,
						});
					} catch (err) {
						if (Repository.isDuplicateKeyError(err)) throw conflict("This phone number is already registered", ErrorTypes.PHONE_TAKEN, { field: "phone" });
						throw err;
					}
					created(ctx, "/me");
					return this.startSession(user, ctx);
				},
			},

			login: {
				rest: "POST /auth/login",
				auth: "public",
				rateLimit: "credentials",
				summary: "Sign in with phone number or user name",
				params: {
					login: { type: "string", min: 1, max: 64, trim: true },
					password: { type: "string", min: 1, max: PASSWORD_MAX },
				},
				async handler(this: This, ctx: Context<LoginParams, AppMeta>): Promise<AuthResult> {
					const { login, password } = ctx.params;
					const phone = looksLikePhone(login) ? normalizePhone(login) : null;
					const key = phone ?? login.toLowerCase();
					const ip = ctx.meta.clientIp;

					const decision = await this.throttle.reserve(key, ip);
					if (!decision.allowed) {
						const retryAfter = Math.max(1, Math.ceil(decision.retryAfterMs / 1000));
						throw rateLimited(`Too many failed sign-in attempts; try again in ${retryAfter} s`, retryAfter, ErrorTypes.LOGIN_THROTTLED);
					}

					const user = phone
						? await this.repos.users.findOne({ phone })
						: await this.repos.users.findOne({ username: login.toLowerCase() });
					// Verify against a dummy hash on a miss so that timing does not reveal which accounts exist.
					const ok = await verifyPassword(user?.passwordHash ?? (await dummyPasswordHash()), password);
					if (!user || !ok) throw unauthorized("Wrong login or password", ErrorTypes.INVALID_CREDENTIALS);
					await this.throttle.succeeded(key, ip);
					return this.startSession(user, ctx);
				},
			},

			refresh: {
				rest: "POST /auth/refresh",
				auth: "public",
				rateLimit: "credentials",
				summary: "Exchange a refresh token for a new token pair (the old one stops working)",
				params: { refreshToken: { type: "string", min: 10, max: 2048 } },
				async handler(this: This, ctx: Context<RefreshParams, AppMeta>): Promise<AuthResult> {
					const verified = this.tokens.verifyRefresh(ctx.params.refreshToken);
					if (!verified.ok) {
						throw verified.error === "expired"
							? unauthorized("Refresh token expired; sign in again", ErrorTypes.TOKEN_EXPIRED)
							: unauthorized("Invalid refresh token", ErrorTypes.INVALID_TOKEN);
					}
					const { sid, sub, gen } = verified.claims;
					const session = await this.repos.sessions.findById(sid);
					if (!session || session.userId !== sub) throw unauthorized("Invalid refresh token", ErrorTypes.INVALID_TOKEN);
					if (session.revokedAt) throw unauthorized("This session has been signed out", ErrorTypes.SESSION_REVOKED);

					const reuse = async () => {
						await this.revokeSession(sid, sub, "refresh_token_reused");
						return unauthorized("Refresh token already used; the session is revoked", ErrorTypes.REFRESH_TOKEN_REUSED);
					};
					if (gen !== session.gen) throw await reuse();

					const now = new Date();
					// Compare-and-set on the generation: of two concurrent refreshes with one token only one wins.
					const moved = await this.repos.sessions.updateWhere(
						{ _id: sid, gen, revokedAt: null },
						{ $set: { gen: gen + 1, refreshedAt: now, expiresAt: new Date(now.getTime() + config.auth.refreshTtlSec * 1000) } },
					);
					if (moved !== 1) throw await reuse();

					const user = await this.repos.users.findById(sub);
					if (!user) throw unauthorized("Account no longer exists", ErrorTypes.INVALID_TOKEN);
					return this.issueFor(user, sid, gen + 1);
				},
			},

			logout: {
				rest: "POST /auth/logout",
				auth: "signedIn",
				summary: "Sign out: revoke this session and its tokens",
				params: {},
				async handler(this: This, ctx: Context<Record<string, never>, AppMeta>): Promise<void> {
					const user = ctx.meta.user!;
					await this.revokeSession(user.sid, user.id, "logout");
					ctx.meta.$statusCode = 204;
				},
			},

			me: {
				rest: "GET /me",
				auth: "signedIn",
				summary: "The signed-in account",
				params: {},
				cache: { keys: ["#user.id"], ttl: 60 },
				async handler(this: This, ctx: Context<Record<string, never>, AppMeta>) {
					const user = await this.repos.users.findById(ctx.meta.user!.id);
					if (!user) throw notFound("User");
					const { createdAt: _omit, ...me } = toPublicUser(user);
					return me;
				},
			},

			createStaff: {
				rest: "POST /admin/users",
				auth: ["admin"],
				summary: "Create a staff account (merchant, operator or admin)",
				params: {
					username: { type: "string", min: 3, max: 32, trim: true, lowercase: true },
					password: { type: "string", min: 1, max: PASSWORD_MAX },
					roles: { type: "array", items: { type: "enum", values: [...ROLES] }, min: 1, unique: true },
					merchantId: { type: "string", min: 1, max: 64, optional: true },
					name: { type: "string", min: 1, max: 50, trim: true, optional: true },
				},
				async handler(this: This, ctx: Context<CreateStaffParams, AppMeta>): Promise<PublicUser> {
					const p = ctx.params;
					const fields: { field: string; message: string }[] = [];
					if (!USERNAME.test(p.username)) fields.push({ field: "username", message: "username must be 3–32 of a-z 0-9 _ . - and start with a letter" });
					for (const problem of passwordProblems(p.password, [p.username])) fields.push({ field: "password", message: `password ${problem}` });
					if (p.roles.includes("merchant") && !p.merchantId) fields.push({ field: "merchantId", message: "merchantId is required for the merchant role" });
					if (!p.roles.includes("merchant") && p.merchantId) fields.push({ field: "merchantId", message: "merchantId is only for the merchant role" });
					if (fields.length) throw invalid(fields);
					// Without the merchants service this answers 503: better than staff bound to no merchant.
					if (p.merchantId && !(await ctx.call<boolean, { id: string }>("merchants.merchantExists", { id: p.merchantId }))) {
						throw invalid([{ field: "merchantId", message: `no merchant ${p.merchantId}` }]);
					}

					const now = new Date();
					try {
						const user = await this.repos.users.insert({
							username: p.username,
							name: p.name ?? p.username,
							passwordHash: await hashPassword(p.password),
							roles: p.roles,
							...(p.merchantId ? { merchantId: p.merchantId } : {}),
							createdAt: now,
							updatedAt: now,
						});
						created(ctx, `/admin/users/${user._id}`);
						return toPublicUser(user);
					} catch (err) {
						if (Repository.isDuplicateKeyError(err)) throw conflict("This user name is taken", ErrorTypes.USERNAME_TAKEN, { field: "username" });
						throw err;
					}
				},
			},

			getAccount: {
				rest: "GET /admin/users/:id",
				auth: ["admin"],
				summary: "An account by id (where POST /admin/users points its Location)",
				...userById,
			},

			/**
			 * Internal (`npm run admin -- reset-password` through the mesh): a new password for a staff
			 * account, random unless given (then answered once), and every session of it revoked.
			 */
			resetPassword: {
				visibility: "public",
				params: {
					username: { type: "string", min: 3, max: 32, trim: true, lowercase: true },
					password: { type: "string", min: 1, max: PASSWORD_MAX, optional: true },
				},
				async handler(this: This, ctx: Context<ResetPasswordParams>): Promise<ResetPasswordResult> {
					const r = await resetPassword(this.repos, ctx.params.username, ctx.params.password);
					if (!r.ok) {
						if (r.reason === "NO_SUCH_USER") throw notFound("User", { username: ctx.params.username });
						throw invalid([{ field: "password", message: r.message }]);
					}
					// Every gateway refuses the sessions' access tokens until they would have expired.
					const until = Date.now() + config.auth.accessTtlSec * 1000;
					for (const s of r.revoked) {
						this.broker.broadcast("users.session.revoked", { sid: s._id, userId: s.userId, reason: "password_reset", until } satisfies SessionRevokedEvent);
					}
					this.logger.warn(`Password of '${r.user.username}' reset; ${r.revoked.length} session(s) revoked`);
					return { userId: r.user._id, username: r.user.username!, revokedSessions: r.revoked.length, ...(r.generated ? { password: r.password } : {}) };
				},
			},

			/** Internal: a user by id, for other services. */
			get: {
				visibility: "public",
				...userById,
			},

			/** Internal: sessions revoked recently enough that their access tokens could still verify (a gateway asks at start). */
			revokedSessions: {
				visibility: "public",
				params: {},
				async handler(this: This): Promise<SessionRevokedEvent[]> {
					const since = new Date(Date.now() - config.auth.accessTtlSec * 1000);
					const rows = await this.repos.sessions.find({ query: { revokedAt: { $gte: since } } });
					return rows.map(s => ({
						sid: s._id, userId: s.userId, reason: s.revokeReason ?? "revoked",
						until: new Date(s.revokedAt!).getTime() + config.auth.accessTtlSec * 1000,
					}));
				},
			},
		},

		methods: {
			async startSession(this: This, user: UserDoc, ctx: Context<unknown, AppMeta>): Promise<AuthResult> {
				const now = new Date();
				const session = await this.repos.sessions.insert({
					userId: user._id,
					gen: 1,
					createdAt: now,
					refreshedAt: now,
					expiresAt: new Date(now.getTime() + config.auth.refreshTtlSec * 1000),
					revokedAt: null,
					...(ctx.meta.clientIp ? { ip: ctx.meta.clientIp } : {}),
				});
				return this.issueFor(user, session._id, 1);
			},

			issueFor(this: This, user: UserDoc, sid: string, gen: number): AuthResult {
				const authUser: AuthUser = { id: user._id, sid, roles: user.roles };
				if (user.merchantId) authUser.merchantId = user.merchantId;
				const access = this.tokens.issueAccess(authUser);
				return {
					user: toPublicUser(user),
					accessToken: access.token,
					refreshToken: this.tokens.issueRefresh(user._id, sid, gen),
					expiresIn: access.expiresIn,
				};
			},

			/** Revoke once; tell every gateway. `false` when it was already revoked. */
			async revokeSession(this: This, sid: string, userId: string, reason: string): Promise<boolean> {
				const now = new Date();
				const changed = await this.repos.sessions.updateWhere(
					{ _id: sid, revokedAt: null },
					{ $set: { revokedAt: now, revokeReason: reason } },
				);
				if (changed) {
					const event: SessionRevokedEvent = { sid, userId, reason, until: now.getTime() + config.auth.accessTtlSec * 1000 };
					// broadcast, not emit: every gateway replica must learn it, not one per group.
					this.broker.broadcast("users.session.revoked", event);
					this.logger.info(`Session ${sid} of ${userId} revoked (${reason})`);
				}
				return changed > 0;
			},

			async bootstrapAdmin(this: This): Promise<AdminBootstrap> {
				const outcome = await this.createAdminIfNone();
				this.adminBootstrapped = true; // /ready waits for it (lib/readiness.ts)
				return outcome;
			},

			async createAdminIfNone(this: This): Promise<AdminBootstrap> {
				const username = (config.admin.username ?? DEFAULT_ADMIN_USERNAME).toLowerCase();
				const existing = await this.repos.users.findOne({ username });
				if (existing) {
					// ADMIN_PASSWORD only chooses the first password: say so when it differs from the account's.
					if (config.admin.password && !(await verifyPassword(existing.passwordHash, config.admin.password))) {
						this.logger.warn(
							`ADMIN_PASSWORD is set but is not the password of the existing account '${username}': it is used only when ` +
							`the account is created, so it was not applied. To change the password: npm run admin -- reset-password ` +
							`--username ${username} --password '<new password>' (with this platform stopped, or through the mesh when TRANSPORTER is set).`,
						);
					}
					return { created: false, username };
				}
				const admins = await this.repos.users.count({ roles: "admin" });
				if (admins > 0) {
					this.logger.warn(`ADMIN_USERNAME '${username}' names no account, but ${admins} admin account(s) exist: none created (an admin creates more with POST /api/v1/admin/users).`);
					return { created: false, username };
				}
				let password = config.admin.password;
				const generated = !password;
				password ??= generatePassword(username);
				const now = new Date();
				try {
					await this.repos.users.insert({
						username, name: "Administrator", passwordHash: await hashPassword(password),
						roles: ["admin"], createdAt: now, updatedAt: now,
					});
				} catch (err) {
					if (Repository.isDuplicateKeyError(err)) return { created: false, username }; // another replica was first
					throw err;
				}
				if (generated) {
					// Shown once, after the node started (startNode): not stored anywhere in clear.
					this.logger.warn(passwordBox("Admin account created", username, password,
						"This password is shown only now (npm run admin -- reset-password sets a new one)."));
					return { created: true, username, generatedPassword: password };
				}
				this.logger.info(`Admin account '${username}' created from ADMIN_USERNAME/ADMIN_PASSWORD`);
				return { created: true, username };
			},
		},

		created(this: This) {
			this.tokens = new TokenService(config.auth);
			const limits = createLimiterFactory({ ...config, logger: this.logger }, "users-throttle");
			this.closeCounters = limits.close;
			this.throttle = new LoginThrottle(limits, config.loginThrottle);
		},

		async stopped(this: This) {
			await this.closeCounters();
		},
	};
}
