// The route mirror: which interface a connection's route leaves by, and whether it is a tunnel,
// kept current for the connect4/6 hooks (route-aware authorization, docs/route-aware.md).
export type { LinkInfo, RouteEntry, RouteImage, RouteNote, RouteSnapshot } from "./types.ts";
export type { NamespaceOptions } from "./ip-command.ts";
export { IpCommandError } from "./ip-command.ts";
export type { BuiltImage, NamespaceDump } from "./build-image.ts";
export { buildImage } from "./build-image.ts";
export { readNamespace, readRouteImage, readRouteImageSync } from "./read.ts";
export { lookup } from "./lookup.ts";
export { isTunnelLink } from "./tunnel.ts";
export type {
  RouteChangeListener,
  RouteEvents,
  RouteMirror,
  RouteMirrorOptions,
} from "./mirror.ts";
export { imageFingerprint, startRouteMirror } from "./mirror.ts";
