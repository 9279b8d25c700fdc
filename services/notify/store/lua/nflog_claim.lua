-- Claim one notification (see claim_fn.lua): KEYS[1]; ARGV now, claim_s, repeat_interval.
return claim(KEYS[1], ARGV[1], ARGV[2], ARGV[3])
