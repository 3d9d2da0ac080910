/**
 * The demo fleet a fresh platform starts with (`DEMO_SEED`, on by default):
 * about 200 points across the five hot cities, 12 doors per cabinet, always
 * the same places and ids (fixed seed), so a new installation has something
 * to search, reserve and open at once.
 */
import fs from "node:fs";
import path from "node:path";
import { Repository } from "../../mixins/repository";
import { ensurePrivateDir } from "../../lib/private-files";
import { credentialLine, generateFleet, HOT_CITIES } from "./fleet-generator";
import type { CabinetDoc, CityDoc, MerchantDoc, PointDoc } from "./model";

export const DEMO_FLEET = { points: 200, cities: HOT_CITIES.length, doorsPerCabinet: 12, seed: 20240601 } as const;

export interface CatalogRepos {
	cities: Repository<CityDoc>;
	merchants: Repository<MerchantDoc>;
	points: Repository<PointDoc>;
	cabinets: Repository<CabinetDoc>;
}

export interface DemoFleetSummary {
	/** False when the catalog already had points (or another node was seeding it at the same moment). */
	seeded: boolean;
	cities: number;
	merchants: number;
	points: number;
	cabinets: number;
	doors: number;
}

interface Log {
	info(...args: unknown[]): void;
}

/**
 * Seeds the demo fleet when the catalog has no points; otherwise does nothing.
 * Cities that already exist are kept. With `credentialsFile` the demo
 * cabinets' MQTT credentials are written there (JSON Lines, mode 0600) for the
 * cabinet simulator; otherwise they are not kept anywhere (rotate a cabinet's
 * secret to use it).
 */
export async function seedDemoFleet(
	repos: CatalogRepos, log: Log, opts: { cabinetSecretKey: string; credentialsFile?: string },
): Promise<DemoFleetSummary> {
	const none: DemoFleetSummary = { seeded: false, cities: 0, merchants: 0, points: 0, cabinets: 0, doors: 0 };
	if ((await repos.points.count()) > 0) return none;

	const fleet = generateFleet({ ...DEMO_FLEET, cabinetSecretKey: opts.cabinetSecretKey });
	const existing = new Set((await repos.cities.find({ query: { _id: { $in: fleet.cities.map(c => c._id) } } })).map(c => c._id));
	const newCities = fleet.cities.filter(c => !existing.has(c._id));
	try {
		await repos.cities.insertMany(newCities);
		// Demo ids are fixed, so a second node seeding at the same time clashes here (or on the merchants).
		await repos.merchants.insertMany(fleet.merchants);
	} catch (err) {
		if (!Repository.isDuplicateKeyError(err)) throw err;
		log.info("Demo fleet: another node is seeding it, skipped");
		return none;
	}
	await repos.points.insertMany(fleet.points);
	await repos.cabinets.insertMany(fleet.cabinets);

	if (opts.credentialsFile) {
		ensurePrivateDir(path.dirname(opts.credentialsFile));
		fs.writeFileSync(opts.credentialsFile, fleet.secrets.map(s => `${credentialLine(s)}\n`).join(""), { mode: 0o600 });
		fs.chmodSync(opts.credentialsFile, 0o600);
	}

	const summary: DemoFleetSummary = {
		seeded: true,
		cities: newCities.length,
		merchants: fleet.merchants.length,
		points: fleet.points.length,
		cabinets: fleet.cabinets.length,
		doors: fleet.cabinets.reduce((n, c) => n + c.doors.length, 0),
	};
	log.info(
		`Demo fleet seeded: ${summary.points} points, ${summary.cabinets} cabinets, ${summary.doors} doors ` +
			`in ${fleet.cities.length} cities, ${summary.merchants} merchants` +
			(opts.credentialsFile ? ` (cabinet credentials in ${opts.credentialsFile})` : ""),
	);
	return summary;
}
