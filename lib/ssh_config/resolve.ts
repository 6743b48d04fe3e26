/**
 * Per-host resolution of a parsed ssh_config, as OpenSSH's readconf.c does
 * it: lines are walked in order, `Host`/`Match` lines switch blocks on and
 * off, and for each keyword the first value obtained wins (IdentityFile
 * accumulates). `Match host` sees the HostName obtained so far, `Match user`
 * the User so far. Lines that would run a program are errors only when they
 * would take effect for this host, so one `Host legacy` block with a
 * ProxyCommand does not break every other host.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { SshConfigError } from "./errors.ts";
import type { JumpHop } from "./jump.ts";
import type { ConfigFile, ConfigLine, Criterion, Entry } from "./parse.ts";
import { asciiLower, matchHostname, matchPattern, matchPatternList } from "./pattern.ts";
import { expandTilde, expandTokens, refuseEnv } from "./tokens.ts";

/** The local side: home dir (for `~`, `%d`, relative Include), user, host name, uid. */
export interface SshConfigContext {
  /** Local home directory (for `~`, `%d` and relative Include paths). */
  home: string;
  /** Local user name (`%u`, `Match localuser`). */
  localUser: string;
  /** Local host name (`%l`; `%L` is it up to the first dot). */
  localHost: string;
  /** Local uid (`%i` and the file owner check); undefined skips the owner check. */
  uid?: number;
}

/** A config line whose value was taken, or recognised and not acted on. */
export interface AppliedLine {
  /** The keyword in its canonical spelling (as ssh_config(5) writes it). */
  keyword: string;
  /** The value as written (the rest of the line after the keyword). */
  value: string;
  /** The file the line is in. */
  file: string;
  /** 1-based line number. */
  line: number;
  /** Why an ignored line is ignored, where that is not obvious. */
  note?: string;
}

/** What the config says about one host. Optional fields are undefined when the config says nothing. */
export interface ResolvedHost {
  /** The alias as typed. */
  alias: string;
  /** HostName with `%h` expanded, or the alias; lowercased, as ssh does. */
  hostName: string;
  /** User: the caller's, else the config's. */
  user?: string;
  /** Port. */
  port?: number;
  /** Expanded (`~`, tokens), in order; [] when none is configured. */
  identityFiles: string[];
  /** IdentitiesOnly. */
  identitiesOnly?: boolean;
  /** A socket path, "none", or "SSH_AUTH_SOCK". */
  identityAgent?: string;
  /** [] for none. Each hop is itself a host the caller resolves through the config. */
  proxyJump: JumpHop[];
  /** ConnectTimeout, in seconds. */
  connectTimeoutSeconds?: number;
  /** ServerAliveInterval, in seconds (0 = off). */
  serverAliveIntervalSeconds?: number;
  /** ServerAliveCountMax. */
  serverAliveCountMax?: number;
  /** UserKnownHostsFile entries, expanded (`~`, tokens); "none" kept. */
  userKnownHostsFiles?: string[];
  /** As written: OpenSSH 9.2 expands neither `~` nor tokens here. */
  globalKnownHostsFiles?: string[];
  /** Lowercased, as ssh does. */
  hostKeyAlias?: string;
  /** StrictHostKeyChecking ("true" is read as "yes", "false" as "no"; "off" means "no"). */
  strictHostKeyChecking?: "yes" | "no" | "ask" | "accept-new" | "off";
  /** PreferredAuthentications, in order. */
  preferredAuthentications?: string[];
  /** PasswordAuthentication. */
  passwordAuthentication?: boolean;
  /** KbdInteractiveAuthentication (or its old name ChallengeResponseAuthentication). */
  kbdInteractiveAuthentication?: boolean;
  /** Every line whose value was taken. */
  applied: AppliedLine[];
  /** Lines recognised but not acted on. */
  ignored: AppliedLine[];
}

/** Options of {@linkcode SshConfig.resolve}. */
export interface ResolveOptions {
  /**
   * The remote user given by the caller, like `ssh -l`: it wins over `User` lines and is what
   * `Match user` and `%r` see.
   * @default undefined (the config's User, else the local user for matching)
   */
  user?: string;
}

type Option = Extract<Entry, { type: "option" }>;

/** A parsed ssh_config (one or more files with their includes), resolvable per host. */
export class SshConfig {
  /** Files read (after Include), for diagnostics. */
  readonly files: string[];
  readonly #roots: ConfigFile[];
  readonly #ctx: SshConfigContext;

  /** Wraps parsed files; use {@linkcode loadSshConfig} or {@linkcode parseSshConfig} to get one. */
  constructor(roots: ConfigFile[], files: string[], ctx: SshConfigContext) {
    this.#roots = roots;
    this.files = files;
    this.#ctx = ctx;
  }

  /**
   * Resolves `alias` through the config.
   * @throws SshConfigError when a line that applies is refused, unsupported or invalid for this host
   */
  resolve(alias: string, options: ResolveOptions = {}): ResolvedHost {
    return new Resolution(alias, options.user, this.#ctx).run(this.#roots);
  }

  /** Concrete Host names (no wildcard, no negation, not from Match), in file order, deduplicated. */
  hosts(): string[] {
    const out = new Set<string>();
    const visit = (entries: Entry[]) => {
      let inBlock = false;
      for (const e of entries) {
        if (e.type === "host") {
          inBlock = true;
          for (const p of e.patterns) if (!/[*?!]/.test(p)) out.add(p);
        } else if (e.type === "match") inBlock = true;
        // A file included inside a block applies only to that block's hosts: its names are not aliases.
        else if (e.type === "include" && !inBlock) { for (const f of e.files) visit(f.entries); }
      }
    };
    for (const r of this.#roots) visit(r.entries);
    return [...out];
  }
}

class Resolution {
  readonly #alias: string;
  readonly #userArg: string | undefined;
  readonly #ctx: SshConfigContext;
  /** First value obtained per option id (ProxyJump and ProxyCommand share "proxy"). */
  readonly #taken = new Map<string, Option>();
  readonly #identityFiles: Option[] = [];
  readonly #ignored: AppliedLine[] = [];
  readonly #applied: AppliedLine[] = [];
  #ignoreUnknown: string | undefined;
  #active = true;

  constructor(alias: string, user: string | undefined, ctx: SshConfigContext) {
    this.#alias = alias;
    this.#userArg = user;
    this.#ctx = ctx;
  }

  run(roots: ConfigFile[]): ResolvedHost {
    for (const r of roots) {
      this.#active = true; // each top-level file starts active, as read_config_file does
      this.#walk(r.entries, false);
    }
    return this.#result();
  }

  #walk(entries: Entry[], neverMatch: boolean): void {
    for (const e of entries) {
      switch (e.type) {
        case "host":
          this.#active = !neverMatch && this.#hostMatches(e.patterns);
          break;
        case "match":
          this.#active = !neverMatch && this.#matchLine(e.criteria, e.at);
          break;
        case "include": {
          const outer = this.#active;
          for (const f of e.files) {
            this.#walk(f.entries, neverMatch || !outer);
            this.#active = outer; // an included file's Host lines do not leak out
          }
          break;
        }
        case "unknown":
          if (this.#ignoreUnknown === undefined || !matchPatternList(e.keyword, this.#ignoreUnknown, true)) {
            throw new SshConfigError("invalid", e.at, `bad configuration option: ${e.keyword}`);
          }
          break;
        case "option":
          if (this.#active) this.#apply(e);
      }
    }
  }

  #hostMatches(patterns: string[]): boolean {
    let hit = false;
    for (const p of patterns) {
      const negated = p.startsWith("!");
      if (matchPattern(this.#alias, negated ? p.slice(1) : p)) {
        if (negated) return false; // a negated match vetoes the whole line
        hit = true;
      }
    }
    return hit;
  }

  #matchLine(criteria: Criterion[], at: ConfigLine): boolean {
    let result = true;
    for (const c of criteria) {
      if (c.attr === "all") {
        if (result) result = !c.negate;
        continue;
      }
      if (c.attr === "exec") {
        if (!result) continue; // OpenSSH skips exec once an earlier criterion failed
        throw new SshConfigError(
          "refused",
          at,
          `Match exec would run "${c.arg}" to decide whether this block applies to "${this.#alias}"; the server cannot run programs`,
        );
      }
      if (c.attr === "unsupported") {
        if (!result) continue;
        throw new SshConfigError(
          "unsupported",
          at,
          `Match ${c.arg} would decide whether this block applies to "${this.#alias}"; this reader does not ` +
            "support it",
        );
      }
      let r: boolean;
      if (c.attr === "host") r = matchHostname(this.#matchHost(), c.arg);
      else if (c.attr === "originalhost") r = matchHostname(this.#alias, c.arg);
      else if (c.attr === "user") r = matchPatternList(this.#remoteUser(), c.arg, false);
      else r = matchPatternList(this.#ctx.localUser, c.arg, false);
      if (r === c.negate) result = false;
    }
    return result;
  }

  /** The host `Match host` tests: HostName so far with `%h` expanded, else the alias. */
  #matchHost(): string {
    const h = this.#taken.get("hostname");
    return h === undefined ? this.#alias : this.#expandHostName(h);
  }

  #expandHostName(h: Option): string {
    return expandTokens(h.value as string, { h: this.#alias }, h.at, "HostName");
  }

  #remoteUser(): string {
    const u = this.#taken.get("user");
    return this.#userArg ?? (u === undefined ? this.#ctx.localUser : u.value as string);
  }

  #apply(e: Option): void {
    const { kw } = e;
    const record = { keyword: kw.name, value: e.rest, file: e.at.file, line: e.at.line };
    if (kw.kind === "ignoredMulti" || kw.kind === "obsolete") {
      this.#ignored.push({ ...record, ...(kw.note ? { note: kw.note } : {}) });
      return;
    }
    if (kw.kind === "ignoreunknown") {
      if (this.#ignoreUnknown === undefined) {
        this.#ignoreUnknown = e.args[0];
        this.#applied.push(record);
      }
      return;
    }
    if (kw.id === "identityfile") {
      if (this.#identityFiles.length >= 100) throw new SshConfigError("invalid", e.at, "too many identity files");
      if (!this.#identityFiles.some((f) => f.value === e.value)) {
        this.#identityFiles.push(e);
        this.#applied.push(record);
      }
      return;
    }
    const slot = kw.id === "proxyjump" || kw.id === "proxycommand" ? "proxy" : kw.id;
    if (this.#taken.has(slot)) return; // first obtained value wins
    this.#taken.set(slot, e);
    if (kw.kind === "ignored") {
      this.#ignored.push({ ...record, ...(kw.note ? { note: kw.note } : {}) });
      return;
    }
    if (kw.kind === "refused") this.#refuse(e);
    if (kw.id === "proxycommand" && e.value !== "none") {
      throw new SshConfigError(
        "refused",
        e.at,
        `ProxyCommand applies to "${this.#alias}" and would run a local program; the server cannot run programs (use ProxyJump)`,
      );
    }
    this.#applied.push(record);
  }

  #refuse(e: Option): void {
    const v = String(e.value);
    const runs = (what: string) =>
      new SshConfigError(
        "refused",
        e.at,
        `${e.kw.name} applies to "${this.#alias}" and would ${what}; the server cannot run programs`,
      );
    switch (e.kw.id) {
      case "localcommand":
        throw runs("run a local command");
      case "knownhostscommand":
        if (v !== "none") throw runs("run a program to find host keys");
        break;
      case "permitlocalcommand":
        if (e.value === true) throw runs("allow running LocalCommand");
        break;
      case "proxyusefdpass":
        if (e.value === true) throw runs("take the connection from a ProxyCommand");
        break;
      case "securitykeyprovider":
        if (v !== "internal") throw runs(`load code from "${v}"`);
        break;
      case "pkcs11provider":
        if (v !== "none") throw runs(`load code from "${v}"`);
        break;
      case "revokedhostkeys":
        // Not a program, but a list of keys the user wants refused: ignoring it would trust them.
        if (v !== "none") {
          throw new SshConfigError(
            "unsupported",
            e.at,
            `RevokedHostKeys applies to "${this.#alias}": this server cannot check a key revocation list, and ` +
              "ignoring it would trust the keys it revokes",
          );
        }
    }
  }

  #result(): ResolvedHost {
    const get = <T>(id: string): T | undefined => this.#taken.get(id)?.value as T | undefined;
    const proxy = this.#taken.get("proxy");
    const hostNameLine = this.#taken.get("hostname");
    const hostName = asciiLower(hostNameLine ? this.#expandHostName(hostNameLine) : this.#alias);
    const configUser = get<string>("user");
    const user = this.#userArg ?? configUser;
    const port = get<number>("port");
    const keyAlias = get<string>("hostkeyalias");
    const hostKeyAlias = keyAlias === undefined ? undefined : asciiLower(keyAlias);
    const ruser = user ?? this.#ctx.localUser;
    const portText = String(port ?? 22);
    const ctx = this.#ctx;
    const vars: Record<string, string> = {
      C: createHash("sha1").update(ctx.localHost + hostName + portText + ruser).digest("hex"),
      L: ctx.localHost.split(".")[0],
      k: hostKeyAlias ?? this.#alias,
      l: ctx.localHost,
      n: this.#alias,
      p: portText,
      d: ctx.home,
      h: hostName,
      r: ruser,
      u: ctx.localUser,
    };
    if (ctx.uid !== undefined) vars.i = String(ctx.uid);
    const unavailable: Record<string, string> = ctx.uid === undefined
      ? { i: "the local uid is not known on this system" }
      : {};
    const path = (value: string, at: ConfigLine, keyword: string) => {
      refuseEnv(value, at, keyword);
      return expandTokens(expandTilde(value, ctx.home, at, keyword), vars, at, keyword, unavailable);
    };
    const out: ResolvedHost = {
      alias: this.#alias,
      hostName,
      identityFiles: this.#identityFiles.map((f) => path(f.value as string, f.at, "IdentityFile")),
      proxyJump: proxy?.kw.id === "proxyjump" && proxy.value !== "none" ? proxy.value as JumpHop[] : [],
      applied: this.#applied,
      ignored: this.#ignored,
    };
    if (user !== undefined) out.user = user;
    if (port !== undefined) out.port = port;
    const agent = this.#taken.get("identityagent");
    if (agent !== undefined) out.identityAgent = this.#agent(agent, path);
    const known = this.#taken.get("userknownhostsfile");
    if (known !== undefined) {
      out.userKnownHostsFiles = (known.value as string[]).map((f) => path(f, known.at, "UserKnownHostsFile"));
    }
    const set = <K extends keyof ResolvedHost>(key: K, id: string) => {
      const v = get<ResolvedHost[K]>(id);
      if (v !== undefined) out[key] = v;
    };
    set("identitiesOnly", "identitiesonly");
    set("connectTimeoutSeconds", "connecttimeout");
    set("serverAliveIntervalSeconds", "serveraliveinterval");
    set("serverAliveCountMax", "serveralivecountmax");
    set("globalKnownHostsFiles", "globalknownhostsfile");
    set("strictHostKeyChecking", "stricthostkeychecking");
    set("passwordAuthentication", "passwordauthentication");
    set("kbdInteractiveAuthentication", "kbdinteractiveauthentication");
    if (hostKeyAlias !== undefined) out.hostKeyAlias = hostKeyAlias;
    const pref = get<string>("preferredauthentications");
    if (pref !== undefined) out.preferredAuthentications = pref.split(",");
    return out;
  }

  #agent(e: Option, path: (v: string, at: ConfigLine, k: string) => string): string {
    const v = e.value as string;
    if (v === "SSH_AUTH_SOCK" || v === "$SSH_AUTH_SOCK" || v === "${SSH_AUTH_SOCK}") return "SSH_AUTH_SOCK";
    if (v.toLowerCase() === "none") return "none";
    if (v.startsWith("$")) {
      throw new SshConfigError(
        "unsupported",
        e.at,
        `IdentityAgent names the environment variable ${v}; the server does not read the environment of your shell`,
      );
    }
    return path(v, e.at, "IdentityAgent");
  }
}
