/**
 * Account chores for whoever runs the platform:
 *
 *   npm run admin -- reset-password [--username admin] [--password-stdin | --password …]
 *
 * Where it acts:
 * - `TRANSPORTER` set: through the mesh. It joins as a node and asks the
 *   users service, which writes its own store and tells every gateway to
 *   refuse the revoked sessions' access tokens at once.
 * - otherwise on the store directly (`MONGO_URI`, else NeDB files in
 *   `DATA_DIR`). NeDB files must not be written by two processes, so it
 *   refuses while a platform uses that DATA_DIR (lib/data-dir-lock.ts): stop
 *   the platform first. Sessions are revoked in the store; a gateway learns
 *   them when it starts.
 */
import fs from "node:fs";
import { ServiceBroker, type BrokerOptions } from "moleculer";
import mongoose from "mongoose";
import { loadConfigOrExit, type Config } from "../config";
import { createBrokerOptions } from "../moleculer.config";
import { createAdapter, ensureMongoose, mongooseModelOf, nedbFilename, type EntityDefinition } from "../mixins/db.mixin";
import { Repository } from "../mixins/repository";
import { heldDataDirText, holdDataDir, liveHolder } from "../lib/data-dir-lock";
import { SessionEntity, UserEntity, type ResetPasswordParams, type ResetPasswordResult } from "../services/users.service";
import { DEFAULT_ADMIN_USERNAME, passwordBox, resetPassword, type AccountRepos } from "../services/users/admin-account";
import { parseFlags, runTool, UsageError } from "./bench/cli";

export const usage = `npm run admin -- <command> [options]

commands:
  reset-password [--username NAME] [--password-stdin | --password PASSWORD]
      A new password for a staff account (default user name: ${DEFAULT_ADMIN_USERNAME}), random unless
      one is given, and every session of the account signed out. A random one is printed once.
      --password-stdin   read it from the first line of standard input, e.g.
                         printf '%s\n' "$NEW_PASSWORD" | npm run admin -- reset-password --password-stdin
      --password         on the command line, where other users of the machine can see it (ps)

Where it acts:
  TRANSPORTER set   through the mesh: the users service changes it and every gateway refuses the
                    old sessions at once (a users node must be running).
  otherwise         on the store directly: MONGO_URI, else the NeDB files in DATA_DIR. Refused while
                    a platform uses that DATA_DIR (two processes must not write NeDB files): stop it
                    first, then start it again afterwards.`;

type Out = { log(text: string): void; error(text: string): void };
const consoleOut: Out = { log: t => console.log(t), error: t => console.error(t) };

export interface AdminToolOptions {
	/** Test seam: broker options for the mesh node (e.g. the Fake transporter). */
	brokerOverrides?: Partial<BrokerOptions>;
	out?: Out;
	/** Where --password-stdin reads (process.stdin by default). */
	stdin?: NodeJS.ReadableStream;
}

/** The longest password line read from standard input (the users service bounds passwords far below). */
const MAX_STDIN_BYTES = 4096;

/** The first line of a stream, without its line ending; at most MAX_STDIN_BYTES. */
export async function readFirstLine(stream: NodeJS.ReadableStream): Promise<string> {
	let text = "";
	for await (const chunk of stream as AsyncIterable<Buffer | string>) {
		text += typeof chunk === "string" ? chunk : chunk.toString("utf8");
		const end = text.search(/\r?\n/);
		if (end >= 0) return text.slice(0, end);
		if (Buffer.byteLength(text) > MAX_STDIN_BYTES) throw new UsageError(`--password-stdin: the first line is over ${MAX_STDIN_BYTES} bytes`);
	}
	return text;
}

/** Runs one command; answers the exit code (2 = bad invocation, 1 = refused or failed). */
export async function main(argv: string[], env: Record<string, string | undefined> = process.env, opts: AdminToolOptions = {}): Promise<number> {
	const out = opts.out ?? consoleOut;
	const [command, ...rest] = argv;
	if (command === undefined || command === "--help" || command === "-h" || command === "help") {
		(command === undefined ? out.error : out.log)(`usage: ${usage}`);
		return command === undefined ? 2 : 0;
	}
	if (command !== "reset-password") throw new UsageError(`unknown command "${command}"`);
	if (rest.includes("--help") || rest.includes("-h")) {
		out.log(`usage: ${usage}`);
		return 0;
	}
	const flags = parseFlags(rest, { username: { type: "string" }, password: { type: "string" }, "password-stdin": { type: "boolean" } });
	const username = (flags.username ?? DEFAULT_ADMIN_USERNAME).trim().toLowerCase();
	if (!username) throw new UsageError("--username needs a name");
	if (flags["password-stdin"] && flags.password !== undefined) throw new UsageError("give --password or --password-stdin, not both");
	const password = flags["password-stdin"] ? await readFirstLine(opts.stdin ?? process.stdin) : flags.password;
	if (flags["password-stdin"] && !password) throw new UsageError("--password-stdin: standard input held no password");
	const params: ResetPasswordParams = { username, ...(password !== undefined ? { password } : {}) };

	if (env.TRANSPORTER?.trim()) return resetThroughMesh(env, params, out, opts.brokerOverrides);
	return resetInStore(loadConfigOrExit(env), params, out);
}

function report(out: Out, r: ResetPasswordResult, where: string): void {
	if (r.password) out.log(passwordBox("New password", r.username, r.password, "Shown only now: it is stored only as a hash."));
	else out.log(`Password of '${r.username}' changed.`);
	out.log(`${r.revokedSessions} session(s) of ${r.userId} signed out (${where}).`);
}

async function resetThroughMesh(env: Record<string, string | undefined>, params: ResetPasswordParams, out: Out, overrides?: Partial<BrokerOptions>): Promise<number> {
	// A node that hosts nothing: the service list only has to be valid.
	const config = loadConfigOrExit({ ...env, SERVICES: "api", METRICS: "false", LOG_LEVEL: env.LOG_LEVEL ?? "warn" });
	const broker = new ServiceBroker({ ...createBrokerOptions(config), nodeID: `admin-tool-${process.pid}`, skipProcessEventRegistration: true, ...overrides });
	await broker.start();
	try {
		try {
			await broker.waitForServices(["users"], 10_000);
		} catch {
			out.error(`No users service answered on ${config.transporter?.replace(/\/\/[^@]*@/, "//***@")} within 10 s. Start the node that hosts users, or unset TRANSPORTER to change the store directly (with the platform stopped).`);
			return 1;
		}
		try {
			const r = await broker.call<ResetPasswordResult, ResetPasswordParams>("users.resetPassword", params);
			report(out, r, "every gateway was told");
			return 0;
		} catch (err) {
			const e = err as { type?: string; code?: number; message?: string; data?: { message?: string }[] };
			if (e.code === 404) out.error(`There is no account with the user name '${params.username}'.`);
			else if (e.code === 422) out.error(e.data?.[0]?.message ?? e.message ?? "The password was refused");
			else out.error(`The users service failed: ${e.message}`);
			return 1;
		}
	} finally {
		await broker.stop();
	}
}

async function resetInStore(config: Config, params: ResetPasswordParams, out: Out): Promise<number> {
	let lock: ReturnType<typeof holdDataDir> | undefined;
	if (!config.mongoUri) {
		const holder = liveHolder(config.dataDir);
		if (holder) {
			out.error(heldDataDirText(config.dataDir, holder, "run the platform with TRANSPORTER set so this goes through the mesh"));
			return 1;
		}
		// A wrong DATA_DIR would otherwise get an empty store of its own.
		if (!fs.existsSync(nedbFilename(UserEntity, config.dataDir))) {
			out.error(`No accounts in DATA_DIR ${config.dataDir} (no ${nedbFilename(UserEntity, config.dataDir)}): is DATA_DIR the platform's?`);
			return 1;
		}
		lock = holdDataDir(config.dataDir, "admin tool");
	}
	const broker = new ServiceBroker({ logger: false }); // the adapters only keep it; never started
	const db = { mongoUri: config.mongoUri, dataDir: config.dataDir };
	const open = <T extends { _id: string }>(entity: EntityDefinition) =>
		new Repository<T>(entity, createAdapter(entity, db), { broker, logger: broker.logger, model: db.mongoUri ? mongooseModelOf(entity) : undefined, persistent: !db.mongoUri });
	const repos: AccountRepos = { users: open(UserEntity), sessions: open(SessionEntity) };
	try {
		if (config.mongoUri) await ensureMongoose(config.mongoUri);
		await repos.users.connect();
		await repos.sessions.connect();
		const r = await resetPassword(repos, params.username, params.password);
		if (!r.ok) {
			out.error(r.message);
			return 1;
		}
		report(out, { userId: r.user._id, username: r.user.username!, revokedSessions: r.revoked.length, ...(r.generated ? { password: r.password } : {}) }, "in the store");
		if (config.mongoUri && r.revoked.length) {
			out.log(`A gateway running now without TRANSPORTER accepts their access tokens until they expire (at most ${config.auth.accessTtlSec} s); their refresh tokens are refused already.`);
		}
		return 0;
	} finally {
		await repos.users.disconnect().catch(() => undefined);
		await repos.sessions.disconnect().catch(() => undefined);
		if (config.mongoUri) await mongoose.disconnect();
		lock?.release();
	}
}

if (require.main === module) runTool(main, usage);
