-- At most one live application (running, awaiting approval or approved) per member id, so
-- that parallel applications for one id cannot both be accepted. Duplicates an earlier race
-- left are rejected first, keeping an approved one, else the oldest.
UPDATE partner_applications SET status = 'rejected', reason = 'superseded: another application for this member id was live'
WHERE status IN ('conformance_running', 'awaiting_approval', 'approved')
  AND EXISTS (
    SELECT 1 FROM partner_applications o
    WHERE o.member_id = partner_applications.member_id
      AND o.status IN ('conformance_running', 'awaiting_approval', 'approved')
      AND (CASE WHEN o.status = 'approved' THEN 0 ELSE 1 END, o.created_at, o.id)
        < (CASE WHEN partner_applications.status = 'approved' THEN 0 ELSE 1 END, partner_applications.created_at, partner_applications.id));
CREATE UNIQUE INDEX partner_applications_one_live ON partner_applications (member_id)
  WHERE status IN ('conformance_running', 'awaiting_approval', 'approved');
