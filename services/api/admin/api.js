// The API client: the access token lives in this module (and sessionStorage, so a reload keeps the
// session for this tab only); an expired token is refreshed once and the call repeated.
const BASE = "/api/v1";
const KEY = "locker-admin-session";

let session = null;
try {
	session = JSON.parse(sessionStorage.getItem(KEY) ?? "null");
} catch {
	session = null;
}
const listeners = new Set();

function keep(next) {
	session = next;
	if (next) sessionStorage.setItem(KEY, JSON.stringify(next));
	else sessionStorage.removeItem(KEY);
	for (const fn of listeners) fn(session);
}

export const currentUser = () => session?.user ?? null;
export const accessToken = () => session?.accessToken ?? null;
export const onSession = fn => listeners.add(fn);

export class ApiError extends Error {
	constructor(status, body) {
		super(body?.message ?? `HTTP ${status}`);
		this.status = status;
		this.type = body?.type ?? "HTTP_" + status;
		this.data = body?.data;
	}
}

async function send(method, path, body, token) {
	const headers = { accept: "application/json" };
	if (token) headers.authorization = `Bearer ${token}`;
	if (body !== undefined) headers["content-type"] = "application/json";
	const res = await fetch(BASE + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
	const text = await res.text();
	let parsed = null;
	try {
		parsed = text ? JSON.parse(text) : null;
	} catch {
		parsed = { message: text.slice(0, 200) };
	}
	if (!res.ok) throw new ApiError(res.status, parsed);
	return parsed;
}

let refreshing = null;
/** One refresh at a time: a rotated refresh token presented twice would end the session. */
export function refresh() {
	refreshing ??= send("POST", "/auth/refresh", { refreshToken: session?.refreshToken ?? "" })
		.then(r => keep({ user: r.user ?? session?.user, accessToken: r.accessToken, refreshToken: r.refreshToken }))
		.catch(err => {
			keep(null);
			throw err;
		})
		.finally(() => (refreshing = null));
	return refreshing;
}

export async function api(method, path, body) {
	try {
		return await send(method, path, body, accessToken());
	} catch (err) {
		if (err.status !== 401 || !session?.refreshToken || path.startsWith("/auth/")) {
			if (err.status === 401) keep(null);
			throw err;
		}
		await refresh();
		return send(method, path, body, accessToken());
	}
}

const STAFF = ["admin", "operator", "merchant"];

export async function login(loginName, password) {
	const r = await send("POST", "/auth/login", { login: loginName, password });
	if (!r.user?.roles?.some(role => STAFF.includes(role))) {
		await send("POST", "/auth/logout", undefined, r.accessToken).catch(() => undefined);
		throw new ApiError(403, { message: "This page is for staff accounts (admin, operator, merchant)", type: "FORBIDDEN" });
	}
	keep({ user: r.user, accessToken: r.accessToken, refreshToken: r.refreshToken });
	return r.user;
}

export async function logout() {
	const token = accessToken();
	keep(null);
	if (token) await send("POST", "/auth/logout", undefined, token).catch(() => undefined);
}

/** Every page of a list route, up to `max` rows. */
export async function listAll(path, max = 2000) {
	const rows = [];
	let total = 0;
	for (let page = 1; rows.length < max; page++) {
		const sep = path.includes("?") ? "&" : "?";
		const r = await api("GET", `${path}${sep}page=${page}&pageSize=100`);
		rows.push(...r.rows);
		total = r.total;
		if (r.rows.length < 100 || rows.length >= total) break;
	}
	return { rows: rows.slice(0, max), total };
}
