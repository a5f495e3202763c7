output "bucket_name" {
  description = "The registry bucket."
  value       = module.bucket.name
}

output "bucket_location" {
  description = "The --bucket argument of publish."
  value       = "s3://${module.bucket.name}${var.registry_prefix == "" ? "" : "/${var.registry_prefix}"}"
}

output "distribution_id" {
  description = "CloudFront distribution ID: publish --cloudfront-distribution (or PUBLISH_CLOUDFRONT_DISTRIBUTION)."
  value       = one(module.cdn[*].id)
}

output "distribution_domain_name" {
  description = "The distribution's *.cloudfront.net name (target of the aliases' DNS records)."
  value       = one(module.cdn[*].domain_name)
}

output "registry_url" {
  description = "The registry's HTTPS URL."
  value       = one(module.cdn[*].registry_url)
}

output "incus_remote_add" {
  description = "The command that adds the registry to an Incus client."
  value       = var.aws_only_resources ? "incus remote add ${var.remote_name} ${one(module.cdn[*].registry_url)} --protocol simplestreams" : null
}

output "publisher_role_arn" {
  description = "Role to assume for publish and publish remove (null without publisher_principals)."
  value       = one(module.publisher[*].publisher_role_arn)
}

output "prune_role_arn" {
  description = "Role to assume for publish prune."
  value       = one(module.publisher[*].prune_role_arn)
}

output "publisher_policy_arn" {
  description = "The publisher policy, to attach to a role or user of your own."
  value       = one(module.publisher[*].publisher_policy_arn)
}
