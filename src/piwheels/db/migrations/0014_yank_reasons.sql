-- Why PyPI's uploader yanked a release (#20): PEP 592's data-yanked and PEP 691's yanked
-- carry the reason to pip and uv, which show it to whoever installs that release anyway.
--
-- Kept beside set_projects (0010) rather than in a new copy of it: its callers record a batch
-- with set_projects, then its reasons with set_yank_reasons, in one transaction.
ALTER TABLE versions ADD COLUMN yanked_reason varchar(1000);

-- batch: as set_projects takes it; each version may carry yanked_reason (text or null).
CREATE FUNCTION set_yank_reasons(batch jsonb) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
    UPDATE versions AS v SET yanked_reason = left(nullif(y.yanked_reason, ''), 1000)
    FROM jsonb_to_recordset(batch) AS x(package text, versions jsonb)
    CROSS JOIN LATERAL jsonb_to_recordset(x.versions) AS y(version text, yanked_reason text)
    WHERE v.package = x.package AND v.version = y.version
      AND v.yanked_reason IS DISTINCT FROM left(nullif(y.yanked_reason, ''), 1000);
$$;
