/**
 * The operators' network map (/admin/): a few static files read once at start
 * and answered from memory. Only the names listed here are served, so no
 * request path ever reaches the file system.
 */
import fs from "node:fs";
import path from "node:path";

export interface StaticFile {
	type: string;
	body: Buffer;
}

/** Self only, no inline script or style: the page's own modules, styles and API calls. */
export const ADMIN_CSP = [
	"default-src 'none'",
	"script-src 'self'",
	"style-src 'self'",
	"img-src 'self'",
	"connect-src 'self'",
	"base-uri 'none'",
	"form-action 'none'",
	"frame-ancestors 'none'",
].join("; ");

const TYPES: Record<string, string> = {
	".html": "text/html; charset=utf-8",
	".js": "text/javascript; charset=utf-8",
	".css": "text/css; charset=utf-8",
	".svg": "image/svg+xml",
};

const PAGE_FILES = ["index.html", "app.js", "api.js", "events.js", "map.js", "cabinet.js", "admin.css", "favicon.svg"];

/** URL path under /admin/ → file. h3-js's browser build (ES module, asm.js: no eval, no WebAssembly) draws the cells. */
export function loadAdminFiles(dir = path.join(__dirname, "admin")): Map<string, StaticFile> {
	const files = new Map<string, StaticFile>();
	const add = (urlPath: string, file: string) =>
		files.set(urlPath, { type: TYPES[path.extname(file)] ?? "application/octet-stream", body: fs.readFileSync(file) });
	for (const name of PAGE_FILES) add(name, path.join(dir, name));
	const h3 = path.join(path.dirname(require.resolve("h3-js/package.json")), "dist", "browser", "h3-js.es.js");
	add("vendor/h3-js.es.js", h3);
	files.set("", files.get("index.html")!);
	return files;
}
