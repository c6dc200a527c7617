// Log event names: the one place they live, so a grep of the log and a grep of the code meet here.
// Names are "<stage>.<what>[.<detail>]", lower case, stable: operators alert on them. Add new names here,
// never inline a string at the call site. Deliberately no field schemas: fields are per call site.

export const Events = {
  // SMTP sessions (src/server)
  smtpConnect: 'smtp.connect',
  smtpClose: 'smtp.close',
  smtpCommand: 'smtp.command',
  smtpReply: 'smtp.reply',
  /** Refused transaction steps, one info line each (src/server/smtp-log.ts has the fields). */
  smtpMailRejected: 'smtp.mail.rejected',
  smtpRcptRejected: 'smtp.rcpt.rejected',
  smtpDataRejected: 'smtp.data.rejected',
  /** The client's forward-confirmed reverse DNS name, once looked up (debug). */
  smtpClientName: 'smtp.client.name',
  smtpQueued: 'smtp.queued',
  smtpTimeout: 'smtp.timeout',
  smtpViolation: 'smtp.violation',
  smtpInternalError: 'smtp.internal_error',
  smtpCommitFailed: 'smtp.commit.failed',
  smtpRefused: 'smtp.refused',
  smtpAuthChecks: 'smtp.authchecks',
  /** One inbound filter's verdict at a stage (policy/filters): filter, stage, verdict, reason, ms. */
  smtpFilter: 'smtp.filter',
  /** A filter asked that an accepted message be dropped (milter discard, every recipient removed). */
  smtpDiscarded: 'smtp.discarded',
  /** A filter's header edits or new body were written into a new queue file (its id given). */
  smtpRewritten: 'smtp.rewritten',
  smtpDiskLow: 'smtp.disk.low',
  smtpAuthVerify: 'smtp.auth.verify',
  smtpAuthSucceeded: 'smtp.auth.succeeded',
  /** An authorized XCLIENT named the client this session speaks for. */
  smtpXclient: 'smtp.xclient',
  /** Security events: failed authentications and lockouts. */
  smtpAuthFailed: 'security.auth.failed',
  smtpAuthLocked: 'security.auth.locked',
  smtpSenderRefused: 'security.sender.refused',
  smtpRateLimited: 'security.rate.limited',
  tlsHandshake: 'smtp.tls',
  tlsFailed: 'smtp.tls.failed',
  // ManageSieve sessions (src/server/managesieve-connection.ts); failed logins are the security.* events
  sieveConnect: 'managesieve.connect',
  sieveClose: 'managesieve.close',
  sieveCommand: 'managesieve.command',
  sieveState: 'managesieve.state',
  sieveTimeout: 'managesieve.timeout',
  sieveViolation: 'managesieve.violation',
  sieveInternalError: 'managesieve.internal_error',
  sieveRefused: 'managesieve.refused',
  sieveTls: 'managesieve.tls',
  sieveTlsFailed: 'managesieve.tls.failed',
  sieveAuthVerify: 'managesieve.auth.verify',
  sieveAuthSucceeded: 'managesieve.auth.succeeded',
  /** A script stored, activated, deactivated, renamed or deleted. */
  sieveScriptChanged: 'managesieve.script',
  /** Catcher mode: a copy kept in the recipient's catch mailbox (docs/catch.md). */
  deliveryCaught: 'delivery.caught',
  /** Redis ([redis] url) stopped answering: shared limits fall back to this node's own. */
  redisUnavailable: 'redis.unavailable',
  /** Redis answers again: limits are the cluster's again. */
  redisBack: 'redis.back',
  /** The server runs in catcher mode (logged at start, with the listeners others can reach). */
  serverCatchMode: 'server.catch',
  // Sieve at delivery (src/delivery/sieve-delivery.ts)
  sieveRun: 'delivery.sieve',
  sieveFailed: 'delivery.sieve.failed',
  sieveVacation: 'delivery.sieve.vacation',
  // POP3 sessions (src/server/pop3-connection.ts); failed logins and lockouts are the security.* events
  pop3Connect: 'pop3.connect',
  pop3Close: 'pop3.close',
  pop3Command: 'pop3.command',
  pop3State: 'pop3.state',
  pop3Timeout: 'pop3.timeout',
  pop3Violation: 'pop3.violation',
  pop3InternalError: 'pop3.internal_error',
  pop3Refused: 'pop3.refused',
  pop3Tls: 'pop3.tls',
  pop3TlsFailed: 'pop3.tls.failed',
  pop3AuthVerify: 'pop3.auth.verify',
  pop3AuthSucceeded: 'pop3.auth.succeeded',
  /** A maildrop opened: user, messages, octets. */
  pop3Maildrop: 'pop3.maildrop',
  /** A message sent (RETR or TOP): uid, octets. */
  pop3Retrieved: 'pop3.retrieved',
  /** QUIT in TRANSACTION: the messages removed (or the failure). */
  pop3Update: 'pop3.update',
  pop3UpdateFailed: 'pop3.update.failed',
  // IMAP sessions (src/server/imap-connection.ts); failed logins and lockouts are the security.* events
  imapConnect: 'imap.connect',
  imapClose: 'imap.close',
  imapCommand: 'imap.command',
  imapTimeout: 'imap.timeout',
  imapViolation: 'imap.violation',
  imapInternalError: 'imap.internal_error',
  imapRefused: 'imap.refused',
  imapTls: 'imap.tls',
  imapTlsFailed: 'imap.tls.failed',
  imapAuthVerify: 'imap.auth.verify',
  imapAuthSucceeded: 'imap.auth.succeeded',
  /** A folder selected (read-write or read-only), with its counts. */
  imapSelect: 'imap.select',
  /** A message APPENDed durably. */
  imapAppend: 'imap.append',
  /** The selected folder was deleted or renamed by someone else: the session ends with BYE. */
  imapSelectedGone: 'imap.selected_gone',
  /** Messages expunged (EXPUNGE, CLOSE, MOVE) by a session. */
  imapExpunge: 'imap.expunge',
  // TLS material (src/net/tls.ts)
  tlsCertLoaded: 'tls.cert.loaded',
  tlsSelfSignedCreated: 'tls.selfsigned.created',
  tlsSelfSignedLoaded: 'tls.selfsigned.loaded',
  tlsSelfSignedReplaced: 'tls.selfsigned.replaced',
  // Queue
  queueCommitted: 'queue.committed',
  queueOrphanRemoved: 'queue.spool.orphan_removed',
  queueUnlinkFailed: 'queue.spool.unlink_failed',
  queueListenerFailed: 'queue.listener.failed',
  queueRemoved: 'queue.removed',
  queueHeld: 'queue.held',
  queueReleased: 'queue.released',
  queueDeleted: 'queue.deleted',
  queueFlushed: 'queue.flushed',
  queueBounceRequested: 'queue.bounce_requested',
  /** Multi-node queue (PostgreSQL): leases of this node renewed, or failing to be. */
  queueLeasesRenewed: 'queue.lease.renewed',
  queueLeaseRenewFailed: 'queue.lease.renew_failed',
  queueLeasesReleaseFailed: 'queue.lease.release_failed',
  queueGroupCommitRetried: 'queue.commit.group_retried',
  // DNS (src/net/dns.ts)
  dnsQueryFailed: 'dns.query.failed',
  /** A datagram that is not the awaited answer (wrong source, id or question; malformed): spoofing? */
  dnsAnswerIgnored: 'security.dns.answer_ignored',
  dnsResolvConfUnreadable: 'dns.resolvconf.unreadable',
  // Delivery (src/delivery)
  deliveryLocal: 'delivery.local',
  deliveryDeferred: 'delivery.deferred',
  deliveryFailed: 'delivery.failed',
  deliveryOverQuota: 'delivery.over_quota',
  deliveryRemotePending: 'delivery.remote.pending',
  deliveryRemote: 'delivery.remote',
  deliveryRemoteFailed: 'delivery.remote.failed',
  deliveryRouteFailed: 'delivery.route.failed',
  deliveryTlsFallback: 'delivery.tls.fallback',
  deliveryDkimFailed: 'delivery.dkim.failed',
  deliveryLongLinesEncoded: 'delivery.long_lines.encoded',
  deliveryForwarded: 'delivery.forwarded',
  deliveryBounced: 'delivery.bounced',
  dsnQueued: 'dsn.queued',
  dsnSuppressed: 'dsn.suppressed',
  deliveryWorkerStarted: 'delivery.worker.started',
  deliveryWorkerStopped: 'delivery.worker.stopped',
  deliveryWorkerStopTimeout: 'delivery.worker.stop_timeout',
  deliveryWorkerError: 'delivery.worker.error',
  // Transport security of outbound mail (src/delivery/mta-sts.ts, dane.ts, remote.ts)
  /** A domain's MTA-STS policy fetched (id, mode, mx, max_age). */
  mtaStsPolicy: 'delivery.mta_sts.policy',
  /** Its policy could not be fetched or parsed (a cached one, if any, stays in force). */
  mtaStsFetchFailed: 'delivery.mta_sts.fetch_failed',
  /** A host refused by a policy (MTA-STS enforce, DANE) before or after connecting, and why. */
  tlsPolicyRefused: 'security.tls_policy.refused',
  /** A day's TLS-RPT report for a domain went out (mailto: queued, https: posted). */
  tlsReportSent: 'delivery.tls_report.sent',
  tlsReportFailed: 'delivery.tls_report.failed',
  /** A day's DMARC aggregate report for a domain was queued (or why an address got none). */
  dmarcReportSent: 'delivery.dmarc_report.sent',
  dmarcReportFailed: 'delivery.dmarc_report.failed',
  /** One inbound message's row of a DMARC aggregate report (debug: the report store counts it). */
  dmarcObserved: 'smtp.dmarc.observed',
  /** MTA-STS testing mode: a delivery that enforce would have refused (delivered anyway). */
  mtaStsTestingFailure: 'delivery.mta_sts.testing_failure',
  // Outbound SMTP client (src/delivery/smtp-client.ts)
  smtpClientConnected: 'delivery.smtp.connected',
  smtpClientConnectFailed: 'delivery.smtp.connect.failed',
  smtpClientTls: 'delivery.smtp.tls',
  smtpClientTlsFailed: 'delivery.smtp.tls.failed',
  /** Bytes a server sent between its STARTTLS 220 and the handshake: thrown away, never read as replies. */
  smtpClientPlaintextDiscarded: 'security.smtp.client.plaintext_discarded',
  smtpClientSent: 'delivery.smtp.sent',
  smtpClientFailed: 'delivery.smtp.failed',
  // Directory (src/directory)
  /** The configured postmaster had no mailbox: serve added it as a user without a password. */
  postmasterCreated: 'directory.postmaster.created',
  /** Mail to the postmaster cannot be delivered (RFC 5321 §4.5.1 requires it): the operator must act. */
  postmasterUndeliverable: 'directory.postmaster.undeliverable',
  // Process lifecycle
  serverListening: 'server.listening',
  serverStopping: 'server.stopping',
  serverStarted: 'server.started',
  serverShutdown: 'server.shutdown',
  serverStopped: 'server.stopped',
  serverShutdownForced: 'server.shutdown.forced',
  serverCloseFailed: 'server.close.failed',
  /** A listener a reload removed: it accepts no more connections (open sessions finish). */
  serverListenerClosed: 'server.listener.closed',
  /** The session threads are running (`[server] workers`): how many. */
  serverWorkersStarted: 'server.workers.started',
  /** A session thread ended without being asked: its sessions were cut, what they held released. */
  serverWorkerExited: 'server.worker.exited',
  /** A session thread started in place of one that ended. */
  serverWorkerRestarted: 'server.worker.restarted',
  /** A listener publishing our MTA-STS policy is bound (`service = "mta-sts"`). */
  mtaStsListening: 'mta_sts.listening',
  // Admin page and HTTP API (src/admin)
  /** An admin listener is bound (its address, and whether it is HTTPS). */
  adminListening: 'admin.listening',
  adminLogin: 'admin.login',
  adminLogout: 'admin.logout',
  /** A failed admin login (wrong name or password, or locked out): a security event. */
  adminLoginFailed: 'security.admin.login_failed',
  /** A request refused before any route: wrong Host (DNS rebinding), missing CSRF token, bad origin. */
  adminRefused: 'security.admin.refused',
  /** A change made through the API (who, what, which ids): users, aliases, keys, reload. */
  adminChange: 'admin.change',
  /** A request that failed inside the server (500): the cause, which the client is not told. */
  adminError: 'admin.error',
  // Configuration: warnings at start, reload (SIGHUP, `tern reload`)
  configWarning: 'config.warning',
  configReloaded: 'config.reloaded',
  configReloadRefused: 'config.reload.refused',
  /** Keys a reload read but that only a restart applies (data kept running on the start snapshot). */
  configReloadRestartNeeded: 'config.reload.restart_needed',
  /** <data_dir>/tern.reload could not be written: `tern reload` will not see the outcome. */
  configReloadStatusFailed: 'config.reload.status_failed',
} as const;

export type EventName = (typeof Events)[keyof typeof Events];
