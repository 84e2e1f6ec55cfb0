ALTER TABLE records ADD COLUMN archived TINYINT NOT NULL DEFAULT 0;
UPDATE records SET archived = 1, title = CONCAT(title, ' (archived)') WHERE MOD(id, 2) = 0;
INSERT INTO release_1_2_0_deliberately_fails_here VALUES (1);
INSERT INTO schema_version (version) VALUES (3);
