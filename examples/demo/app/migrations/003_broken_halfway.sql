ALTER TABLE records ADD COLUMN archived TINYINT NOT NULL DEFAULT 0;
UPDATE records SET archived = 1, title = CONCAT(title, ' (archived)') WHERE MOD(id, 2) = 0;
ALTER TABLE records ADD CONSTRAINT release_1_2_0_deliberately_fails_on_any_record CHECK (archived < 0);
ALTER TABLE records DROP CONSTRAINT release_1_2_0_deliberately_fails_on_any_record;
INSERT INTO schema_version (version) VALUES (3);
