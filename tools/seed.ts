/**
 * Seeds a synthetic fleet into the catalog store the services use:
 *
 *   npm run seed -- --points 100000 --cities 5 --doors 24 [--seed 42] [--credentials PATH] [--reset]
 *
 * The store is chosen like the services choose it (`MONGO_URI` → MongoDB,
 * otherwise NeDB files in `DATA_DIR`). Refuses to write into a catalog that
 * has data unless `--reset`, which empties cities, merchants, points and
 * cabinets first. The cabinets' MQTT credentials go to a JSON Lines file
 * (mode 0600; default `DATA_DIR/cabinet-credentials.jsonl`) for the cabinet
 * simulator: the store keeps only their hashes.
 */
import fs from "node:fs";
import path from "node:path";
import { ServiceBroker } from "moleculer";
import mongoose from "mongoose";
import { loadConfigOrExit, type Config } from "../config";
import { createAdapter, mongooseModelOf, nedbFilename, type EntityDefinition } from "../mixins/db.mixin";
import { Repository } from "../mixins/repository";
import { PRIVATE_DIR_MODE, PRIVATE_FILE_MODE } from "../lib/private-files";
import { heldDataDirText, holdDataDir, liveHolder } from "../lib/data-dir-lock";
import { CATALOG_ENTITIES } from "../services/merchants/model";
import type { CatalogRepos } from "../services/merchants/demo-fleet";
import { credentialLine, DEFAULT_SEED, generateFleetChunks, HOT_CITIES, MAX_DOORS_PER_CABINET } from "../services/merchants/fleet-generator";
import { parseFlags, positiveInt, runTool, UsageError } from "./bench/cli";
import { formatTable } from "./bench/table";

export const usage = `npm run seed -- [options]

  --points N          storage points (default 100000)
  --cities N          how many hot cities, 1-${HOT_CITIES.length} (default ${HOT_CITIES.length}: ${HOT_CITIES.map(c => c.code).join(" ")})
  --doors N           doors per cabinet, 1-${MAX_DOORS_PER_CABINET} (default 24)
  --seed N            PRNG seed: same seed, same ids and places (default ${DEFAULT_SEED})
  --merchants N       merchants (default max(5, points / 200))
  --credentials PATH  cabinet credentials, JSON Lines (default DATA_DIR/cabinet-credentials.jsonl)
  --chunk N           points per write (default 2000)
  --reset             empty cities, merchants, points and cabinets first

The store is the services' own: MONGO_URI, otherwise NeDB files in DATA_DIR.`;

const FLAGS = {
	points: { type: "string" },
	cities: { type: "string" },
	doors: { type: "string" },
	seed: { type: "string" },
	merchants: { type: "string" },
	credentials: { type: "string" },
	chunk: { type: "string" },
	reset: { type: "boolean" },
} as const;

export interface SeedArgs {
	points: number;
	cities: number;
	doors: number;
	seed: number;
	merchants?: number;
	credentials?: string;
	chunk: number;
	reset: boolean;
}

export function parseSeedArgs(argv: string[]): SeedArgs {
	const f = parseFlags(argv, FLAGS);
	const cities = positiveInt("cities", f.cities, HOT_CITIES.length);
	if (cities > HOT_CITIES.length) throw new UsageError(`--cities must be 1..${HOT_CITIES.length} (got "${f.cities}")`);
	const doors = positiveInt("doors", f.doors, 24);
	if (doors > MAX_DOORS_PER_CABINET) throw new UsageError(`--doors must be 1..${MAX_DOORS_PER_CABINET} (got "${f.doors}")`);
	const seed = f.seed === undefined ? DEFAULT_SEED : Number(f.seed);
	if (f.seed !== undefined && (!/^-?\d+$/.test(f.seed) || !Number.isSafeInteger(seed))) throw new UsageError(`--seed must be an integer (got "${f.seed}")`);
	if (f.credentials !== undefined && f.credentials.trim() === "") throw new UsageError("--credentials needs a path");
	return {
		points: positiveInt("points", f.points, 100_000),
		cities,
		doors,
		seed,
		merchants: f.merchants === undefined ? undefined : positiveInt("merchants", f.merchants, 0),
		credentials: f.credentials,
		chunk: positiveInt("chunk", f.chunk, 2000),
		reset: !!f.reset,
	};
}

// ---------------------------------------------------------------------------
// Progress

const fmt = (n: number) => Math.round(n).toLocaleString("en-US");

function duration(sec: number): string {
	if (!Number.isFinite(sec)) return "--";
	sec = Math.max(0, Math.round(sec));
	const m = Math.floor(sec / 60);
	return m ? `${m}m${String(sec % 60).padStart(2, "0")}s` : `${sec}s`;
}

/** One line redrawn with `\r` on a terminal; a line every 10 % otherwise (CI logs, pipes). */
export class Progress {
	private readonly started = Date.now();
	private lastDraw = 0;
	private lastDecile = 0;
	private lastPrinted = -1;

	constructor(
		private readonly total: number,
		private readonly out: NodeJS.WriteStream = process.stderr,
		private readonly tty = !!process.stderr.isTTY,
	) {}

	update(done: number, force = false): void {
		const now = Date.now();
		const elapsed = (now - this.started) / 1000;
		const rate = elapsed > 0 ? done / elapsed : 0;
		const eta = rate > 0 ? (this.total - done) / rate : Infinity;
		const frac = this.total ? done / this.total : 1;
		if (this.tty) {
			if (!force && now - this.lastDraw < 100) return;
			this.lastDraw = now;
			const width = 30;
			const full = Math.round(frac * width);
			const bar = "█".repeat(full) + "░".repeat(width - full);
			const line = `  ${bar} ${(frac * 100).toFixed(0).padStart(3)}%  ${fmt(done)}/${fmt(this.total)} points  ${fmt(rate)}/s  ETA ${duration(eta)}`;
			this.out.write(`\r${line}\x1b[K`);
		} else {
			const decile = Math.floor(frac * 10);
			if (done === this.lastPrinted || (decile <= this.lastDecile && !force)) return;
			this.lastDecile = decile;
			this.lastPrinted = done;
			this.out.write(`  ${(frac * 100).toFixed(0).padStart(3)}%  ${fmt(done)}/${fmt(this.total)} points  ${fmt(rate)}/s  ETA ${duration(eta)}\n`);
		}
	}

	/** Ends the redrawn line. */
	done(): void {
		if (this.tty) this.out.write("\n");
	}
}

// ---------------------------------------------------------------------------
// Store

function openRepos(config: Config, broker: ServiceBroker): CatalogRepos {
	const db = { mongoUri: config.mongoUri, dataDir: config.dataDir };
	const open = (entity: EntityDefinition) =>
		new Repository<any>(entity, createAdapter(entity, db), {
			broker,
			logger: broker.logger,
			model: db.mongoUri ? mongooseModelOf(entity) : undefined,
			persistent: !db.mongoUri,
		});
	return {
		cities: open(CATALOG_ENTITIES.cities),
		merchants: open(CATALOG_ENTITIES.merchants),
		points: open(CATALOG_ENTITIES.points),
		cabinets: open(CATALOG_ENTITIES.cabinets),
	};
}

/**
 * `--reset` on NeDB: delete the catalog's files before they are loaded.
 * Removing 100 000 documents through NeDB takes about as long as seeding them
 * (every removal rescans the index entries that share its key), and loading
 * them first adds more.
 */
function removeNedbFiles(dataDir: string): string[] {
	const removed: string[] = [];
	for (const entity of [CATALOG_ENTITIES.cities, CATALOG_ENTITIES.merchants, CATALOG_ENTITIES.points, CATALOG_ENTITIES.cabinets]) {
		const file = nedbFilename(entity, dataDir);
		// NeDB's crash-safe rewrite leaves `<file>~`, which it would restore when `<file>` is missing.
		for (const f of [file, `${file}~`]) {
			let size: number;
			try {
				size = fs.statSync(f).size;
			} catch {
				continue;
			}
			fs.rmSync(f);
			removed.push(`${path.basename(f)} (${(size / 1e6).toFixed(1)} MB)`);
		}
	}
	return removed;
}

const storeName = (config: Config) =>
	config.mongoUri ? `MongoDB ${config.mongoUri.replace(/\/\/[^@]*@/, "//***@")}` : `NeDB files in ${config.dataDir}`;

// ---------------------------------------------------------------------------

export async function main(argv: string[]): Promise<number> {
	const args = parseSeedArgs(argv);
	const config = loadConfigOrExit(process.env);
	const credentialsFile = path.resolve(args.credentials ?? path.join(config.dataDir, "cabinet-credentials.jsonl"));
	const t0 = Date.now();

	let lock: ReturnType<typeof holdDataDir> | undefined;
	if (!config.mongoUri) {
		const holder = liveHolder(config.dataDir);
		if (holder) {
			console.error(heldDataDirText(config.dataDir, holder));
			return 1;
		}
		fs.mkdirSync(config.dataDir, { recursive: true, mode: PRIVATE_DIR_MODE });
		lock = holdDataDir(config.dataDir, "seed tool"); // a platform started meanwhile warns that it shares the files
	}
	try {
		return await seed(args, config, credentialsFile, t0);
	} finally {
		lock?.release();
	}
}

async function seed(args: SeedArgs, config: Config, credentialsFile: string, t0: number): Promise<number> {
	// The adapters only keep the broker; it is never started.
	const broker = new ServiceBroker({ logger: false });
	const repos = openRepos(config, broker);
	const all = Object.entries(repos) as [keyof CatalogRepos, Repository<any>][];
	console.log(`Seeding ${storeName(config)}`);
	if (args.reset && !config.mongoUri) {
		const removed = removeNedbFiles(config.dataDir);
		if (removed.length) console.log(`Reset: removed ${removed.join(", ")}`);
	}
	for (const [, repo] of all) await repo.connect();

	let interrupted = false;
	const onSignal = () => {
		if (interrupted) process.exit(130);
		interrupted = true;
		process.stderr.write("\nInterrupted: finishing the current chunk and closing the store (^C again to abort)…\n");
	};
	process.on("SIGINT", onSignal);

	const totals = { cities: 0, merchants: 0, points: 0, cabinets: 0, doors: 0 };
	let fh: fs.promises.FileHandle | undefined;
	try {
		const counts = await Promise.all(all.map(async ([name, repo]) => [name, await repo.count()] as const));
		const nonEmpty = counts.filter(([, n]) => n > 0);
		if (nonEmpty.length && !args.reset) {
			console.error(`The catalog is not empty (${nonEmpty.map(([name, n]) => `${fmt(n)} ${name}`).join(", ")}).\nUse --reset to empty cities, merchants, points and cabinets first.`);
			return 1;
		}
		if (nonEmpty.length) {
			process.stdout.write(`Emptying ${nonEmpty.map(([name]) => name).join(", ")}… `);
			const t = Date.now();
			for (const [name] of nonEmpty) await repos[name].clear();
			console.log(`${((Date.now() - t) / 1000).toFixed(1)} s`);
		}

		fs.mkdirSync(path.dirname(credentialsFile), { recursive: true, mode: PRIVATE_DIR_MODE });
		fh = await fs.promises.open(credentialsFile, "w", PRIVATE_FILE_MODE);
		await fh.chmod(PRIVATE_FILE_MODE); // an existing file keeps its mode on open

		const progress = new Progress(args.points);
		progress.update(0, true);
		const chunks = generateFleetChunks(
			{ points: args.points, cities: args.cities, doorsPerCabinet: args.doors, seed: args.seed, merchants: args.merchants, cabinetSecretKey: config.cabinetSecretKey },
			args.chunk,
		);
		for (const chunk of chunks) {
			if (chunk.cities.length) totals.cities += await repos.cities.insertMany(chunk.cities);
			if (chunk.merchants.length) totals.merchants += await repos.merchants.insertMany(chunk.merchants);
			const [points, cabinets] = await Promise.all([repos.points.insertMany(chunk.points), repos.cabinets.insertMany(chunk.cabinets)]);
			totals.points += points;
			totals.cabinets += cabinets;
			for (const c of chunk.cabinets) totals.doors += c.doors.length;
			await fh.write(chunk.secrets.map(s => `${credentialLine(s)}\n`).join(""));
			progress.update(totals.points);
			if (interrupted) break;
		}
		progress.update(totals.points, true);
		progress.done();
	} finally {
		await fh?.close();
		const wrote = totals.cities + totals.merchants > 0;
		if (wrote && !config.mongoUri) process.stdout.write("Compacting the NeDB files… ");
		const t = Date.now();
		for (const [, repo] of all) await repo.disconnect();
		if (config.mongoUri) await mongoose.disconnect();
		else if (wrote) console.log(`${((Date.now() - t) / 1000).toFixed(1)} s`);
		process.off("SIGINT", onSignal);
	}

	const seconds = (Date.now() - t0) / 1000;
	console.log();
	console.log(
		formatTable(
			[{ title: "cities", align: "right" }, { title: "merchants", align: "right" }, { title: "points", align: "right" },
				{ title: "cabinets", align: "right" }, { title: "doors", align: "right" }, { title: "seconds", align: "right" }],
			[[fmt(totals.cities), fmt(totals.merchants), fmt(totals.points), fmt(totals.cabinets), fmt(totals.doors), seconds.toFixed(1)]],
		),
	);
	console.log(`\nCabinet credentials (secret, mode 0600): ${credentialsFile}`);
	if (interrupted) {
		console.error(`Interrupted after ${fmt(totals.points)} of ${fmt(args.points)} points.`);
		return 130;
	}
	return 0;
}

if (require.main === module) runTool(main, usage);
