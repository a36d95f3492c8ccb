// The 4-tier endpoint directory (GET /api/v1/directory), loaded once per page, grouped by district.
import { api } from "./api.js";

let cached = null;

export const TIER_VI = { central: "Trung ương", province: "Tỉnh", district: "Huyện", commune: "Xã" };

export async function loadDirectory() {
  if (cached) return cached;
  const doc = await api("GET", "/api/v1/directory");
  const byId = new Map(doc.endpoints.map((ep) => [ep.id, ep]));
  const children = new Map();
  for (const ep of doc.endpoints) {
    if (!ep.parent) continue;
    if (!children.has(ep.parent)) children.set(ep.parent, []);
    children.get(ep.parent).push(ep);
  }
  const districts = doc.endpoints.filter((ep) => ep.tier === "district");
  const top = doc.endpoints.filter((ep) => ep.tier === "central" || ep.tier === "province");
  cached = { name: doc.name, endpoints: doc.endpoints, byId, children, districts, top };
  return cached;
}

// The district an endpoint belongs to (itself for a district), or null for central/province.
export function districtOf(dir, id) {
  let ep = dir.byId.get(id);
  while (ep && ep.tier !== "district") ep = ep.parent ? dir.byId.get(ep.parent) : null;
  return ep || null;
}

// Groups for the live map and the picker: the central + provincial rooms, then one per district
// (the district room first, then everything below it).
export function groups(dir) {
  const below = (id) => (dir.children.get(id) || []).flatMap((c) => [c, ...below(c.id)]);
  return [
    { id: "top", name: "Trung ương và tỉnh (Central and province)", kind: "top", endpoints: dir.top },
    ...dir.districts.map((d) => ({ id: d.id, name: d.name, kind: "district", endpoints: [d, ...below(d.id)] })),
  ];
}
