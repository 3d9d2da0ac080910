/**
 * Where door state lives between messages, and who may write it.
 *
 * Ownership is per cabinet: a lease held by one node (owner token = node id +
 * a random id of this process) with an epoch that grows on every takeover.
 * Every write names the epoch it was made under and is refused unless that
 * lease is still held at that epoch — a node that paused past its lease (GC,
 * network) finds its writes refused and stops commanding (ARCHITECTURE.md
 * invariant 1, "fencing").
 *
 * - RedisDoorStore (distributed): the lease, the records and the timer index
 *   are checked and written in one Lua script each, so "check lease, write"
 *   is atomic.
 * - LocalDoorStore (embedded): one node by construction; records go to the
 *   embedded database (NeDB under DATA_DIR) before anything is acknowledged,
 *   and the epoch still grows per start, so commands from an earlier run are
 *   stale to the cabinet.
 *
 * Epochs must grow over a cabinet's whole life (PROTOCOL.md), also when the
 * store forgets (Redis restarted empty): a new epoch is the larger of the last
 * one + 1 and the store's clock in milliseconds, so it is above every epoch
 * handed out before. A cabinet that still answers STALE_EPOCH (a clock set
 * back) is moved past once with `bump`.
 */
import type { Redis } from "ioredis";
import type { EntityDefinition } from "../mixins/db.mixin";
import type { Repository } from "../mixins/repository";
import type { DoorRecord } from "./door-machine";
import { KeyedQueue } from "../lib/key-queue";

/**
 * A new lease, and how much longer the cabinet counts as online by what the previous owner last
 * heard from it (`heardForMs`, the rest of its silence window, as that owner last renewed or
 * released the lease): the next owner does not have to hear the cabinet before it may command it.
 */
export type LeaseAnswer = { epoch: number; heardForMs?: number } | { heldBy: string; expiresInMs: number };

/**
 * A door that cannot be given to a new order right now, as read models need
 * it (geo's availability): kept in the store beside the record, so a replica
 * that starts later can load them all at once.
 */
export interface TakenDoor {
	doorId: string;
	pointId: string;
	size: string;
	state: string;
	open: boolean;
	occupied: boolean;
	version: number;
}

export interface SaveItem {
	record: DoorRecord;
	due: number | null;
	/** Set when the door is taken after this write, null when it is free (or disabled). */
	taken: TakenDoor | null;
}

export interface DoorStore {
	/** Takes the cabinet's lease (a new epoch), or keeps it if this owner holds it already. */
	acquire(cabinetId: string, owner: string, ttlMs: number): Promise<LeaseAnswer>;
	/**
	 * Extends a held lease; false = lost (expired or taken over). Renewals and the release also keep
	 * `heardForMs` for the next owner (LeaseAnswer): > 0 while the cabinet is heard, else nothing.
	 */
	renew(cabinetId: string, owner: string, epoch: number, ttlMs: number, heardForMs?: number): Promise<boolean>;
	release(cabinetId: string, owner: string, epoch: number, heardForMs?: number): Promise<void>;
	/** A new, higher epoch for a lease still held at `epoch` (the cabinet has seen a higher one); null = not held. */
	bump(cabinetId: string, owner: string, epoch: number): Promise<number | null>;
	load(cabinetId: string): Promise<DoorRecord[]>;
	/** Writes records, their next due times and taken marks iff the lease is still (owner, epoch); false = fenced off. */
	save(cabinetId: string, owner: string, epoch: number, records: SaveItem[]): Promise<boolean>;
	/** Every taken door (all cabinets). */
	taken(): Promise<TakenDoor[]>;
	/** Cabinets with a door timer due by `now` (any owner: used to wake cabinets nobody holds). */
	due(now: number, limit: number): Promise<string[]>;
	close(): Promise<void>;
}

// ---------------------------------------------------------------------------
// Redis

/** The next epoch of KEYS[2]: max(last + 1, the server's clock in ms), stored. */
const NEXT_EPOCH = `
local function nextEpoch(key)
  local t = redis.call('TIME')
  local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local last = tonumber(redis.call('GET', key) or '0')
  local epoch = math.max(last + 1, ms)
  redis.call('SET', key, string.format('%d', epoch))
  return epoch
end`;

const ACQUIRE = `${NEXT_EPOCH}
local cur = redis.call('GET', KEYS[1])
if cur then
  local sep = string.find(cur, '|', 1, true)
  local owner = string.sub(cur, 1, sep - 1)
  if owner == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return {1, string.sub(cur, sep + 1)}
  end
  return {0, owner, redis.call('PTTL', KEYS[1])}
end
local epoch = string.format('%d', nextEpoch(KEYS[2]))
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. epoch, 'PX', ARGV[2])
local heard = redis.call('PTTL', KEYS[3])
redis.call('DEL', KEYS[3])
return {1, epoch, heard}`;

/** KEYS: lease, epoch. ARGV: owner|epoch, owner. */
const BUMP = `${NEXT_EPOCH}
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local epoch = string.format('%d', nextEpoch(KEYS[2]))
redis.call('SET', KEYS[1], ARGV[2] .. '|' .. epoch, 'KEEPTTL')
return epoch`;

/** What is heard of the link, for the next owner: KEYS[2] lives as long as the cabinet counts as online. */
const KEEP_HEARD = `
local function keepHeard(key, ms)
  if tonumber(ms) > 0 then redis.call('SET', key, '1', 'PX', ms) else redis.call('DEL', key) end
end`;

/** KEYS: lease, link. ARGV: owner|epoch, ttl, heardForMs. */
const RENEW = `${KEEP_HEARD}
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
keepHeard(KEYS[2], ARGV[3])
return redis.call('PEXPIRE', KEYS[1], ARGV[2])`;

/** KEYS: lease, link. ARGV: owner|epoch, heardForMs. */
const RELEASE = `${KEEP_HEARD}
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
keepHeard(KEYS[2], ARGV[2])
return redis.call('DEL', KEYS[1])`;

/** KEYS: lease, doors hash, timers zset, taken hash. ARGV: owner|epoch, cabinetId, then per record: no, json, due (or ''), doorId, taken json (or ''). */
const SAVE = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local nextDue = nil
for i = 3, #ARGV, 5 do
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
  if ARGV[i + 2] == '' then redis.call('HDEL', KEYS[2] .. ':due', ARGV[i]) else redis.call('HSET', KEYS[2] .. ':due', ARGV[i], ARGV[i + 2]) end
  if ARGV[i + 4] == '' then redis.call('HDEL', KEYS[4], ARGV[i + 3]) else redis.call('HSET', KEYS[4], ARGV[i + 3], ARGV[i + 4]) end
end
local dues = redis.call('HVALS', KEYS[2] .. ':due')
for _, d in ipairs(dues) do
  local n = tonumber(d)
  if nextDue == nil or n < nextDue then nextDue = n end
end
if nextDue == nil then redis.call('ZREM', KEYS[3], ARGV[2]) else redis.call('ZADD', KEYS[3], nextDue, ARGV[2]) end
return 1`;

type Scripted = Redis & {
	doorLeaseAcquire(lease: string, epoch: string, link: string, owner: string, ttl: number): Promise<[number, string, number?]>;
	doorLeaseBump(lease: string, epoch: string, token: string, owner: string): Promise<number | string>;
	doorLeaseRenew(lease: string, link: string, token: string, ttl: number, heardForMs: number): Promise<number>;
	doorLeaseRelease(lease: string, link: string, token: string, heardForMs: number): Promise<number>;
	doorSave(lease: string, doors: string, timers: string, taken: string, ...args: (string | number)[]): Promise<number>;
};

/** A duration for PX: whole milliseconds, 0 for none. */
const wholeMs = (ms: number) => Math.max(0, Math.floor(ms));

/** After a failed Redis command the store fails at once for this long (no queue of calls each waiting out the timeout). */
const BACK_OFF_MS = 1000;

export class RedisDoorStore implements DoorStore {
	private readonly redis: Scripted;
	private downUntil = 0;

	/** Runs a command unless Redis just failed; a failure starts a short back-off. */
	private async guard<T>(run: () => Promise<T>): Promise<T> {
		if (Date.now() < this.downUntil) throw new Error("Redis failed just now; backing off");
		try {
			return await run();
		} catch (err) {
			this.downUntil = Date.now() + BACK_OFF_MS;
			throw err;
		}
	}

	constructor(redis: Redis, private readonly prefix = "lk:") {
		// Scripts by SHA (EVALSHA): the body is sent once, not with every write.
		if (!("doorSave" in redis)) {
			redis.defineCommand("doorLeaseAcquire", { numberOfKeys: 3, lua: ACQUIRE });
			redis.defineCommand("doorLeaseRenew", { numberOfKeys: 2, lua: RENEW });
			redis.defineCommand("doorLeaseRelease", { numberOfKeys: 2, lua: RELEASE });
			redis.defineCommand("doorLeaseBump", { numberOfKeys: 2, lua: BUMP });
			redis.defineCommand("doorSave", { numberOfKeys: 4, lua: SAVE });
		}
		this.redis = redis as unknown as Scripted;
	}

	private lease = (c: string) => `${this.prefix}lease:{${c}}`;
	private epochKey = (c: string) => `${this.prefix}epoch:{${c}}`;
	private linkKey = (c: string) => `${this.prefix}link:{${c}}`;
	private doorsKey = (c: string) => `${this.prefix}doors:{${c}}`;
	private timersKey = () => `${this.prefix}door-timers`;
	private takenKey = () => `${this.prefix}doors-taken`;

	async acquire(cabinetId: string, owner: string, ttlMs: number): Promise<LeaseAnswer> {
		const [got, value, pttl] = await this.guard(() => this.redis.doorLeaseAcquire(this.lease(cabinetId), this.epochKey(cabinetId), this.linkKey(cabinetId), owner, ttlMs));
		if (got !== 1) return { heldBy: value, expiresInMs: Math.max(0, Number(pttl ?? ttlMs)) };
		// PTTL: -2 when no owner passed the link on (or it ran out), else the time left.
		return Number(pttl) > 0 ? { epoch: Number(value), heardForMs: Number(pttl) } : { epoch: Number(value) };
	}

	async renew(cabinetId: string, owner: string, epoch: number, ttlMs: number, heardForMs = 0): Promise<boolean> {
		return (await this.guard(() => this.redis.doorLeaseRenew(this.lease(cabinetId), this.linkKey(cabinetId), `${owner}|${epoch}`, ttlMs, wholeMs(heardForMs)))) === 1;
	}

	async release(cabinetId: string, owner: string, epoch: number, heardForMs = 0): Promise<void> {
		await this.guard(() => this.redis.doorLeaseRelease(this.lease(cabinetId), this.linkKey(cabinetId), `${owner}|${epoch}`, wholeMs(heardForMs)));
	}

	async bump(cabinetId: string, owner: string, epoch: number): Promise<number | null> {
		const got = Number(await this.guard(() => this.redis.doorLeaseBump(this.lease(cabinetId), this.epochKey(cabinetId), `${owner}|${epoch}`, owner)));
		return got > 0 ? got : null;
	}

	async load(cabinetId: string): Promise<DoorRecord[]> {
		const all = await this.guard(() => this.redis.hgetall(this.doorsKey(cabinetId)));
		return Object.values(all).map(v => JSON.parse(v) as DoorRecord);
	}

	async save(cabinetId: string, owner: string, epoch: number, records: SaveItem[]): Promise<boolean> {
		const args: (string | number)[] = [`${owner}|${epoch}`, cabinetId];
		for (const { record, due, taken } of records) {
			args.push(String(record.no), JSON.stringify(record), due === null ? "" : String(due), record.doorId, taken ? JSON.stringify(taken) : "");
		}
		return (await this.guard(() => this.redis.doorSave(this.lease(cabinetId), this.doorsKey(cabinetId), this.timersKey(), this.takenKey(), ...args))) === 1;
	}

	async taken(): Promise<TakenDoor[]> {
		return Object.values(await this.redis.hgetall(this.takenKey())).map(v => JSON.parse(v) as TakenDoor);
	}

	async due(now: number, limit: number): Promise<string[]> {
		return this.redis.zrangebyscore(this.timersKey(), 0, now, "LIMIT", 0, limit);
	}

	async close(): Promise<void> {}
}

// ---------------------------------------------------------------------------
// Embedded

/**
 * The embedded store's documents, all in one collection: per cabinet its epoch
 * (`_id` = cabinet id), per door its record (`_id` = door id), so a change of
 * one door rewrites one small document, not its whole cabinet. (Documents of
 * an earlier version held every door of the cabinet in `doors`: still read.)
 */
export interface DoorCabinetDoc {
	_id: string;
	/** Cabinet documents: the epoch of the last lease. */
	epoch?: number;
	/** Door documents: */
	cabinetId?: string;
	record?: DoorRecord;
	due?: number | null;
	taken?: TakenDoor | null;
	/** Documents of the earlier layout: door number → record, next due time (and `taken` then mapped door number → taken door). */
	doors?: Record<string, DoorRecord>;
	dues?: Record<string, number>;
	nextDue?: number | null;
}

export const DOOR_STATE_ENTITY: EntityDefinition = {
	collection: "door_states",
	idPrefix: "dst",
	fields: { epoch: "number", cabinetId: "string", record: "object", due: "number", taken: "object", doors: "object", dues: "object", nextDue: "number" },
	indexes: [{ fields: { cabinetId: 1 }, sparse: true }, { fields: { due: 1 }, sparse: true }, { fields: { nextDue: 1 }, sparse: true }],
};

export class LocalDoorStore implements DoorStore {
	private readonly leases = new Map<string, { owner: string; epoch: number; until: number }>();
	/** Links passed on at release: until when the cabinet counts as heard (one node: one clock). */
	private readonly heardUntil = new Map<string, number>();
	/** One write at a time per cabinet, in order (a cabinet's writes come from one actor host anyway). */
	private readonly writing = new KeyedQueue();

	constructor(private readonly repo: Repository<DoorCabinetDoc>, private readonly now: () => number = Date.now) {}

	async acquire(cabinetId: string, owner: string, ttlMs: number): Promise<LeaseAnswer> {
		const held = this.leases.get(cabinetId);
		if (held && held.until > this.now() && held.owner !== owner) return { heldBy: held.owner, expiresInMs: held.until - this.now() };
		if (held && held.owner === owner && held.until > this.now()) {
			held.until = this.now() + ttlMs;
			return { epoch: held.epoch };
		}
		const epoch = await this.nextEpoch(cabinetId);
		this.leases.set(cabinetId, { owner, epoch, until: this.now() + ttlMs });
		const heardForMs = (this.heardUntil.get(cabinetId) ?? 0) - this.now();
		this.heardUntil.delete(cabinetId);
		return heardForMs > 0 ? { epoch, heardForMs } : { epoch };
	}

	async bump(cabinetId: string, owner: string, epoch: number): Promise<number | null> {
		const held = this.leases.get(cabinetId);
		if (!held || held.owner !== owner || held.epoch !== epoch) return null;
		held.epoch = await this.nextEpoch(cabinetId);
		return held.epoch;
	}

	private async nextEpoch(cabinetId: string): Promise<number> {
		const doc = await this.repo.findById(cabinetId);
		const epoch = Math.max((doc?.epoch ?? 0) + 1, this.now());
		await this.repo.upsertById(cabinetId, { epoch });
		return epoch;
	}

	async renew(cabinetId: string, owner: string, epoch: number, ttlMs: number, heardForMs = 0): Promise<boolean> {
		const held = this.leases.get(cabinetId);
		if (!held || held.owner !== owner || held.epoch !== epoch || held.until <= this.now()) return false;
		held.until = this.now() + ttlMs;
		this.keepHeard(cabinetId, heardForMs);
		return true;
	}

	async release(cabinetId: string, owner: string, epoch: number, heardForMs = 0): Promise<void> {
		const held = this.leases.get(cabinetId);
		if (!held || held.owner !== owner || held.epoch !== epoch) return;
		this.leases.delete(cabinetId);
		this.keepHeard(cabinetId, heardForMs);
	}

	private keepHeard(cabinetId: string, heardForMs: number): void {
		if (heardForMs > 0) this.heardUntil.set(cabinetId, this.now() + heardForMs);
		else this.heardUntil.delete(cabinetId);
	}

	async load(cabinetId: string): Promise<DoorRecord[]> {
		const cabinet = await this.repo.findById(cabinetId);
		if (cabinet?.doors) await this.migrate(cabinet);
		const doors = await this.repo.find({ query: { cabinetId } });
		return doors.flatMap(d => (d.record ? [d.record] : []));
	}

	/** A cabinet document of the earlier layout: its doors become documents of their own. */
	private async migrate(cabinet: DoorCabinetDoc): Promise<void> {
		const legacyTaken = (cabinet as { taken?: Record<string, TakenDoor> }).taken ?? {};
		for (const [no, record] of Object.entries(cabinet.doors ?? {})) {
			const existing = await this.repo.findById(record.doorId);
			if (existing?.record && existing.record.version >= record.version) continue;
			await this.repo.upsertById(record.doorId, { cabinetId: cabinet._id, record, due: cabinet.dues?.[no] ?? null, taken: legacyTaken[no] ?? null });
		}
		await this.repo.updateWhere({ _id: cabinet._id }, { $unset: { doors: true, dues: true, taken: true, nextDue: true } });
	}

	save(cabinetId: string, owner: string, epoch: number, records: SaveItem[]): Promise<boolean> {
		return this.writing.run(cabinetId, async () => {
			const held = this.leases.get(cabinetId);
			if (!held || held.owner !== owner || held.epoch !== epoch) return false;
			const cabinet = await this.repo.findById(cabinetId);
			if (!cabinet || cabinet.epoch !== epoch) return false;
			for (const { record, due, taken } of records) {
				await this.repo.upsertById(record.doorId, { cabinetId, record, due, taken });
			}
			return true;
		});
	}

	async taken(): Promise<TakenDoor[]> {
		for (const c of await this.repo.find({ query: { doors: { $exists: true } } })) await this.migrate(c);
		const doors = await this.repo.find({ query: { cabinetId: { $exists: true }, taken: { $ne: null } } });
		return doors.flatMap(d => (d.taken ? [d.taken] : []));
	}

	async due(now: number, limit: number): Promise<string[]> {
		const [doors, legacy] = await Promise.all([
			this.repo.find({ query: { due: { $lte: now } }, limit }),
			// Earlier layout, until the cabinet is loaded (and migrated) once.
			this.repo.find({ query: { nextDue: { $lte: now } }, limit }),
		]);
		return [...new Set([...doors.map(d => d.cabinetId!), ...legacy.map(c => c._id)])].slice(0, limit);
	}

	async close(): Promise<void> {}
}
