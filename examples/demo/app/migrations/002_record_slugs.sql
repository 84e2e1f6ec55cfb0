ALTER TABLE records ADD COLUMN slug VARCHAR(220) NULL;
UPDATE records SET slug = LOWER(REPLACE(TRIM(title), ' ', '-'));
ALTER TABLE records MODIFY slug VARCHAR(220) NOT NULL;
INSERT INTO schema_version (version) VALUES (2);
