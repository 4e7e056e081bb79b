-- Every send of a number updates its one pace row, so sends of one number queue on that row's
-- lock, held until each commit is on disk. The pace is worth nothing after a crash (it only
-- spaces sends a second apart), so the table skips the write-ahead log: the lock is held for
-- the update alone. A crash empties it; the first sends after it go at once, as at first start.
ALTER TABLE channel_send_pace SET UNLOGGED;
