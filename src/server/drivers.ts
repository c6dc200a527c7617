// The driver factory of each service: the one table the listeners consult. Typed by Service, so a service
// added to the configuration without a driver does not compile.

import type { Service } from '../config/config.ts';
import type { DriverFactory } from './driver.ts';
import { imapDriver } from './imap-connection.ts';
import { manageSieveDriver } from './managesieve-connection.ts';
import { pop3Driver } from './pop3-connection.ts';
import { smtpDriver } from './smtp-connection.ts';

export type DriverRegistry = Readonly<Record<Service, DriverFactory>>;

export const DRIVERS: DriverRegistry = {
  smtp: smtpDriver,
  submission: smtpDriver,
  submissions: smtpDriver,
  pop3: pop3Driver,
  pop3s: pop3Driver,
  imap: imapDriver,
  imaps: imapDriver,
  lmtp: smtpDriver,
  managesieve: manageSieveDriver,
};
