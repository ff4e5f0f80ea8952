-- When a token was last issued to a dynamic client (written at most once a day per replica, never per
-- request): a self-registered client idle for `--registration-idle-days` is deleted.
alter table client add column last_issued_at bigint;
