output "publisher_policy_arn" {
  description = "The publisher policy (attach it to your own role or user if you create no role here)."
  value       = aws_iam_policy.publisher.arn
}

output "prune_policy_arn" {
  description = "The prune policy."
  value       = aws_iam_policy.prune.arn
}

output "publisher_role_arn" {
  description = "The role publish runs as (null without publisher_principals)."
  value       = one(aws_iam_role.publisher[*].arn)
}

output "prune_role_arn" {
  description = "The role publish prune runs as (null without principals)."
  value       = one(aws_iam_role.prune[*].arn)
}
