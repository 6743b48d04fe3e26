/**
 * Every keyword OpenSSH 9.2 (Debian) accepts in ssh_config, and what this
 * reader does with it. The list was checked against `ssh -G`: a keyword not
 * here is "Bad configuration option" there too, so an unknown keyword is an
 * error (unless `IgnoreUnknown` lists it) rather than silently skipped.
 *
 * @module
 */

/**
 * - `resolved`: read into {@linkcode ResolvedHost}; `refused`: applies only if it would not run
 *   code; `ignored`/`ignoredMulti`: recorded, not acted on (single-valued: first one wins;
 *   multi-valued: every line counts); `obsolete`: OpenSSH itself ignores it.
 */
export type KeywordKind =
  | "host"
  | "match"
  | "include"
  | "ignoreunknown"
  | "resolved"
  | "refused"
  | "ignored"
  | "ignoredMulti"
  | "obsolete";

/** A keyword: its canonical spelling, what it does here, and the option it sets (aliases share one). */
export interface Keyword {
  name: string;
  kind: KeywordKind;
  id: string;
  /** Shown next to an ignored line. */
  note?: string;
}

const TABLE: [KeywordKind, string, string?][] = [
  ["host", "Host"],
  ["match", "Match"],
  ["include", "Include"],
  ["ignoreunknown", "IgnoreUnknown"],
  ...([
    "HostName",
    "User",
    "Port",
    "IdentityFile",
    "IdentitiesOnly",
    "IdentityAgent",
    "ProxyJump",
    "ProxyCommand",
    "ConnectTimeout",
    "ServerAliveInterval",
    "ServerAliveCountMax",
    "UserKnownHostsFile",
    "GlobalKnownHostsFile",
    "HostKeyAlias",
    "StrictHostKeyChecking",
    "PreferredAuthentications",
    "PasswordAuthentication",
    "KbdInteractiveAuthentication",
  ].map((n) => ["resolved", n] as [KeywordKind, string])),
  ["resolved", "IdentityFile2", "IdentityFile"],
  ["resolved", "ChallengeResponseAuthentication", "KbdInteractiveAuthentication"],
  ["resolved", "SkeyAuthentication", "KbdInteractiveAuthentication"],
  ["resolved", "TISAuthentication", "KbdInteractiveAuthentication"],
  ["resolved", "ProtocolKeepAlives", "ServerAliveInterval"], // Debian's alias
  ...([
    "LocalCommand",
    "KnownHostsCommand",
    "PermitLocalCommand",
    "ProxyUseFdpass",
    "SecurityKeyProvider",
    "PKCS11Provider",
    "RevokedHostKeys",
  ].map((n) => ["refused", n] as [KeywordKind, string])),
  ["refused", "SmartcardDevice", "PKCS11Provider"],
  ...([
    "ForwardAgent",
    "ForwardX11",
    "ForwardX11Trusted",
    "ForwardX11Timeout",
    "ExitOnForwardFailure",
    "XAuthLocation",
    "GatewayPorts",
    "KbdInteractiveDevices",
    "PubkeyAuthentication",
    "HostbasedAuthentication",
    "AddKeysToAgent",
    "Ciphers",
    "MACs",
    "PermitRemoteOpen",
    "EscapeChar",
    "ConnectionAttempts",
    "BatchMode",
    "CheckHostIP",
    "Compression",
    "TCPKeepAlive",
    "NumberOfPasswordPrompts",
    "SyslogFacility",
    "LogLevel",
    "LogVerbose",
    "HostKeyAlgorithms",
    "CASignatureAlgorithms",
    "BindAddress",
    "BindInterface",
    "ClearAllForwardings",
    "EnableSSHKeysign",
    "VerifyHostKeyDNS",
    "NoHostAuthenticationForLocalhost",
    "RekeyLimit",
    "AddressFamily",
    "SetEnv",
    "ControlPath",
    "ControlMaster",
    "ControlPersist",
    "HashKnownHosts",
    "Tunnel",
    "TunnelDevice",
    "RemoteCommand",
    "VisualHostKey",
    "KexAlgorithms",
    "IPQoS",
    "RequestTTY",
    "SessionType",
    "StdinNull",
    "ForkAfterAuthentication",
    "CanonicalDomains",
    "CanonicalizeFallbackLocal",
    "CanonicalizeHostname",
    "CanonicalizeMaxDots",
    "CanonicalizePermittedCNAMEs",
    "StreamLocalBindMask",
    "StreamLocalBindUnlink",
    "FingerprintHash",
    "UpdateHostKeys",
    "HostbasedAcceptedAlgorithms",
    "PubkeyAcceptedAlgorithms",
    "RequiredRSASize",
    "EnableEscapeCommandline",
    "GSSAPIAuthentication",
    "GSSAPIDelegateCredentials",
    "GSSAPIKeyExchange",
    "GSSAPIClientIdentity",
    "GSSAPIServerIdentity",
    "GSSAPIRenewalForcesRekey",
    "GSSAPITrustDNS",
    "GSSAPIKexAlgorithms",
    "SetupTimeOut",
  ].map((n) => ["ignored", n] as [KeywordKind, string])),
  ["ignored", "DSAAuthentication", "PubkeyAuthentication"],
  ["ignored", "KeepAlive", "TCPKeepAlive"],
  ["ignored", "HostbasedKeyTypes", "HostbasedAcceptedAlgorithms"],
  ["ignored", "PubkeyAcceptedKeyTypes", "PubkeyAcceptedAlgorithms"],
  ...(["CertificateFile", "LocalForward", "RemoteForward", "DynamicForward", "SendEnv"].map((n) =>
    ["ignoredMulti", n] as [KeywordKind, string]
  )),
  ...([
    "Protocol",
    "Cipher",
    "FallBackToRsh",
    "GlobalKnownHostsFile2",
    "RhostsAuthentication",
    "UserKnownHostsFile2",
    "UseRoaming",
    "UseRsh",
    "UsePrivilegedPort",
    "UseBlacklistedKeys",
    "AFSTokenPassing",
    "KerberosAuthentication",
    "KerberosTGTPassing",
    "RSAAuthentication",
    "RhostsRSAAuthentication",
    "CompressionLevel",
  ].map((n) => ["obsolete", n] as [KeywordKind, string])),
];

const NOTES: Record<string, string> = {
  remotecommand: "runs on the remote host; this server runs only the commands it is given",
};

/** Keywords by lowercased spelling. */
export const KEYWORDS: ReadonlyMap<string, Keyword> = new Map(
  TABLE.map(([kind, name, alias]) => {
    const id = (alias ?? name).toLowerCase();
    const note = kind === "obsolete" ? "deprecated or unsupported in OpenSSH, which ignores it" : NOTES[id];
    return [name.toLowerCase(), { name, kind, id, ...(note ? { note } : {}) }];
  }),
);
